"""An evaluation run: one pass of a checkpoint's detector over a split; one ClearML task.

Prints and writes the evaluation report (:mod:`lightdet.evaluation.report`) into the run
folder, and keeps the F1-optimal score threshold beside the checkpoint for ``predict``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from lightdet.evaluation.report import EvaluationReport, format_report, write_report
from lightdet.evaluation.thresholds import save_threshold
from lightdet.guard import inspect_checkpoint, secure_config
from lightdet.lightning.module import DetectionModule
from lightdet.lightning.precision import trainer_precision
from lightdet.runs.build import build_datamodule, module_from_checkpoint
from lightdet.runs.predict import NonFiniteOutputError
from lightdet.runs.preflight import say_notes
from lightdet.runs.train import claim_output_dir, scalars
from lightdet.tracking import bounded
from lightdet.tracking.callbacks import ClearMLReports
from lightdet.tracking.reports import report_evaluation
from lightdet.tracking.task import clearml_task

log = logging.getLogger(__name__)


def run_evaluation(
    cfg: DictConfig, bind_hydra: bool = True, record: bool = True
) -> dict[str, float]:
    """Score ``cfg.ckpt_path`` on ``cfg.split`` (``val`` or ``test``) of ``cfg.data``; returns
    the logged metrics (``val/map``, ``val/map_50``, per-class AP, ...). ``record=False``
    (the Python API's default): quiet, no run folder, task, report files or kept threshold."""
    secure_config(cfg)
    inspect_checkpoint(cfg.ckpt_path)  # one line, before a run folder or task exists
    say_notes()  # which data: the checkpoint's, or the command line's
    if record:
        claim_output_dir(cfg)
    tracking = clearml_task(cfg, bind_hydra=bind_hydra) if record else nullcontext()
    with tracking as task, _quiet_lightning(not record):
        pl.seed_everything(cfg.seed, workers=True, verbose=record)
        datamodule = build_datamodule(cfg)
        module = module_from_checkpoint(cfg.ckpt_path, datamodule.class_names)
        quiet = {} if record else {"enable_progress_bar": False, "enable_model_summary": False}
        trainer: pl.Trainer = instantiate(
            cfg.trainer,
            precision=trainer_precision(cfg.trainer),  # auto: what suits this machine
            logger=instantiate(cfg.logger.lightning, task=task) if record else False,
            callbacks=[ClearMLReports()] if record else [],
            **quiet,
        )
        run = {"val": trainer.validate, "test": trainer.test}[cfg.split]
        (metrics,) = run(module, datamodule=datamodule, verbose=record)
        if trainer.is_global_zero:  # the pass's one report: the metrics above are its own
            _check_finite(module)
            if record:
                _report(cfg, module, datamodule, task)
    return scalars(metrics)


@contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Lightning's start-up banner (accelerator, GPU, TPU lines) held back for an API call."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning.pytorch")]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _check_finite(module: DetectionModule) -> None:
    """Scores of a model whose every output was NaN/inf would read as a model that finds
    nothing: the command fails instead, before writing a report or a threshold."""
    if module.last_dropped and not module.last_report.counts[1]:
        raise NonFiniteOutputError(
            f"evaluate: no detection left: the model returned NaN/inf boxes or scores "
            f"({module.last_dropped} dropped) and nothing finite; check the checkpoint (its "
            "weights may hold NaN/inf)"
        )


def _report(cfg: DictConfig, module: DetectionModule, datamodule, task) -> None:
    from lightdet.models.anchor_fit import anchor_sides

    report: EvaluationReport = module.last_report
    folder = Path(cfg.paths.output_dir)
    dataset = datamodule.datasets[cfg.split]
    first = report.images[0] if report.images else None
    files = write_report(
        report,
        folder,
        module.recorder.samples,
        pictures=dataset.image_of,
        anchor_sides=anchor_sides(module.net, (first.height, first.width)) if first else [],
    )
    if task is not None:
        bounded.send(
            task, "reporting the evaluation", report_evaluation, task.get_logger(), report, 0
        )
    per_class = {n: best for n, best in report.threshold.items() if n != "all"}
    kept = save_threshold(
        cfg.ckpt_path,
        report.threshold["all"],
        per_class,
        f"{cfg.split} split of {cfg.data.source.get('_target_', 'the data')}",
    )
    print(format_report(report))  # the report is the command's output, not a log record
    print(f"\nwritten to {folder}: " + ", ".join(p.name for p in files))
    if kept is not None:
        print(f"score threshold {report.score_threshold:.3f} kept in {kept} (predict's default)")
    else:
        print(
            f"the checkpoint's folder is not lightdet's: nothing written beside it; pass "
            f"score_thresh={report.score_threshold:.3f} to predict"
        )
