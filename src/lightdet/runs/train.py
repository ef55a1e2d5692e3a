"""A training run on a composed config: fit, then test the best checkpoint; one ClearML task."""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightdet import outputs
from lightdet.guard import check_checkpoint_fits, inspect_checkpoint, secure_config
from lightdet.guard.secrets import scrub_line
from lightdet.lightning.budget import BudgetKeeper
from lightdet.lightning.checkpoint_io import AtomicCheckpointIO
from lightdet.lightning.host_memory import keep_freed_memory
from lightdet.lightning.optimization import plan_batch
from lightdet.lightning.precision import trainer_precision
from lightdet.lightning.progress import ProgressBar, ValidationLine
from lightdet.lightning.ranks import is_global_zero
from lightdet.lightning.results import RunResults
from lightdet.lightning.resume import ResumeCheckpoint, find_last_checkpoint
from lightdet.lightning.schedulers import clock
from lightdet.runs.build import build_datamodule, build_module
from lightdet.runs.preflight import check_recipe, check_resumable
from lightdet.tracking import bounded
from lightdet.tracking.clearml import record_classes
from lightdet.tracking.task import clearml_task

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        metric: the optimized metric's name (``optimized_metric``, default ``val/map``).
        best: its best value over the run (None when it was never logged).
        metrics: the last logged value of every scalar (``val/*`` of the last epoch, ``test/*``
            of the best checkpoint when the data has a test split).
        best_checkpoint: the best checkpoint file (for :meth:`lightdet.Detector.from_checkpoint`
            and ``evaluate``), None without checkpointing.
        output_dir: the run folder.
        best_epoch: the epoch of the best value (None when unknown).
        best_metrics: the ``val/*`` scalars of that epoch.
        results_dir: the folder of curves and the best epoch's report (``results/``).
        epochs: the epochs trained (all of them, a resumed run's included).
        steps: the optimiser steps taken (``trainer.global_step``).
        task_id: the run's ClearML task (None without one); task_url: its page (online only).
    """

    metric: str
    best: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    output_dir: str | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    results_dir: str | None = None
    epochs: int | None = None
    steps: int | None = None
    task_id: str | None = None
    task_url: str | None = None


def run_training(
    cfg: DictConfig, extra_callbacks: list | None = None, bind_hydra: bool = True
) -> TrainResult:
    """Fit (and test, when the data has a test split).

    Args:
        cfg: the composed training config.
        extra_callbacks: added to the configured ones (hyperparameter search adds pruning).
        bind_hydra: let ClearML's Hydra binding record this run's overrides (False for runs
            composed in-process, such as search trials and the Python API, whose Hydra app is
            another one or none).
    """
    secure_config(cfg)  # before anything is created from it
    check_recipe(cfg)  # the CLI checked it at composition; the API and search trials here
    ckpt_path = resolve_ckpt_path(cfg)  # a missing or broken checkpoint: one line, nothing made
    claim_output_dir(cfg)
    started = time.monotonic()
    # the stopped run's task, from the facts read when the checkpoint was first looked at
    continue_task = inspect_checkpoint(ckpt_path).task_id if ckpt_path else None
    with clearml_task(cfg, bind_hydra=bind_hydra, continue_task=continue_task) as task:
        result = _fit(cfg, task, extra_callbacks, ckpt_path, started)
        tracked = _tracked_where(task)
        session = task.get_offline_mode_folder() if task is not None and task.is_offline() else None
        if task is not None:
            result.task_id = str(task.id)
            result.task_url = None if task.is_offline() else task.get_output_log_web_page()
    log.info(
        "%s = %.4f; best checkpoint %s", result.metric, result.best or 0.0, result.best_checkpoint
    )
    if is_global_zero():
        disk = disk_line(result.output_dir, session)
        print(scrub_line(summary(result, time.monotonic() - started, tracked, disk)), flush=True)
    return result


def disk_line(output_dir: str | None, session: str | os.PathLike | None) -> str | None:
    """What the run leaves on disk: its folder, and outside it the offline ClearML session
    (folder and zip; files hard-linked to the run's counted once, in the run folder)."""
    if not output_dir or not Path(output_dir).is_dir():
        return None
    run = outputs.disk_usage(output_dir)
    parts = [f"{outputs.human_size(run)} in the run folder"]
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        parts[0] += f" (last.ckpt {outputs.human_size(last.stat().st_size)}: for resuming)"
    if session is not None:
        paths = [Path(session), Path(f"{session}.zip")]
        outside = outputs.disk_usage(output_dir, *paths) - run
        parts.append(f"{outputs.human_size(outside)} outside it (the ClearML offline session)")
    return f"disk        {', '.join(parts)}; make clean removes both"


def _tracked_where(task) -> str:
    if task is None:
        return "ClearML     not recorded (logger.clearml off)"
    if task.is_offline():
        session = f"{task.get_offline_mode_folder()}.zip"  # written when the task closes
        return (
            f"ClearML     offline session {session}\n"
            f"            upload it: make clearml-import SESSION={session}"
        )
    where = f"ClearML     {task.get_output_log_web_page()}"
    if (call := bounded.lost_at(task)) is None:
        return where
    return (
        f"{where}\n"
        f"            incomplete: the server left {call} unanswered; what that waited for and "
        "everything after it (scalars, plots, images, models) is not on the server. The "
        "run's local outputs are complete."
    )


def summary(result: TrainResult, seconds: float, tracked: str, disk: str | None = None) -> str:
    """The closing screen of a training run: best epoch and metrics, wall time, where the
    checkpoint, pictures and ClearML record are, and what to run next."""
    minutes, secs = divmod(round(seconds), 60)
    head = [f"training finished in {minutes} min {secs:02d} s"]
    if result.best is not None:
        epoch = "" if result.best_epoch is None else f" (epoch {result.best_epoch})"
        head.append(f"best {result.metric} = {result.best:.4f}{epoch}")
    lines = [" | ".join(head)]
    for title, metrics, keys in (
        (
            "best epoch",
            result.best_metrics,
            ("val/map", "val/map_50", "val/map_75", "val/map_small"),
        ),
        ("test", result.metrics, ("test/map", "test/map_50", "test/map_75")),
    ):
        shown = "  ".join(f"{k.split('/')[1]} {metrics[k]:.4f}" for k in keys if k in metrics)
        if shown:
            lines.append(f"{title:<11} {shown}")
    if result.best_checkpoint:
        lines.append(f"checkpoint  {result.best_checkpoint}")
    if result.results_dir and Path(result.results_dir).is_dir():
        pictures = sorted(
            p.name for p in Path(result.results_dir).iterdir() if p.suffix in (".png", ".jpg")
        )
        lines.append(f"pictures    {result.results_dir}/ ({', '.join(pictures)})")
    lines.append(tracked)
    if disk:
        lines.append(disk)
    if result.best_checkpoint:
        lines.append(f"next        make eval CKPT={result.best_checkpoint}")
    rule = "-" * 78
    return "\n".join([rule, *lines, rule])


def write_split_lists(folder: Path, made_splits: dict[str, dict[str, list[str]]]) -> None:
    """The seeded splits made for data folders without split lists, as VOC split lists
    (``<split>.txt``, a name per line; one folder per data folder when there are several), so
    the run can be repeated with them."""
    for i, (root, splits) in enumerate(sorted(made_splits.items())):
        where = folder if len(made_splits) == 1 else folder / f"{i}_{Path(root).name}"
        where.mkdir(parents=True, exist_ok=True)
        for split, names in splits.items():
            (where / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        log.info("data: the split made for %s is in %s", root, where)


def claim_output_dir(cfg: DictConfig) -> None:
    """``paths.output_dir`` must be new, empty or lightdet's. Hydra's run folder was checked
    before Hydra wrote into it (by the composition guard) and is marked by then."""
    output_dir = Path(cfg.paths.output_dir)
    hydra_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
    if hydra_dir is not None and output_dir.resolve() == Path(hydra_dir).resolve():
        outputs.mark(output_dir, "run")
    else:
        outputs.claim(output_dir, "paths.output_dir", "run")


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a file, or ``auto`` for the newest ``last.ckpt`` among the runs of this
    ``task_name`` (``${paths.log_dir}/${task_name}/runs/*/checkpoints/``) that stopped before
    their end on the same data, which is what a preempted run leaves."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "auto":
        if not ckpt_path:
            return None
        path = inspect_checkpoint(ckpt_path).path
        check_resumable(cfg)  # not a weights-only best checkpoint (the CLI checked it already)
        return str(path)
    data = OmegaConf.to_container(cfg.data.source, resolve=True)  # as the checkpoint stores it
    found = find_last_checkpoint(Path(cfg.paths.log_dir) / str(cfg.task_name) / "runs", data=data)
    log.info("ckpt_path=auto: resuming from %s", found)
    return str(found)


def _fit(
    cfg: DictConfig,
    task,
    extra_callbacks: list | None,
    ckpt_path: str | None,
    started: float | None = None,
) -> TrainResult:
    """Build, fit (from ``ckpt_path`` when resuming) and test."""
    pl.seed_everything(cfg.seed, workers=True)  # after Task.init, which reseeds every generator
    if OmegaConf.select(cfg, "keep_freed_memory", default=True):  # before the loader workers fork
        keep_freed_memory()
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    made_splits = datamodule.state_dict()["made_splits"]
    if made_splits and is_global_zero():
        write_split_lists(Path(cfg.paths.output_dir) / "splits", made_splits)
    if task is not None:
        record_classes(task, datamodule.class_names, datamodule.category_map, made_splits)
    if ckpt_path:  # a clear error for another model or class set, before Lightning's shape dump
        check_checkpoint_fits(ckpt_path, module.state_dict(), datamodule.class_names)
    callbacks = _callbacks(cfg, ckpt_path) + list(extra_callbacks or [])
    if cfg.get("budget_minutes") is not None:  # the whole run within the minutes asked for
        after = 2.0 if cfg.get("test") and _test_split_configured(cfg) else 1.0
        callbacks.append(
            BudgetKeeper(cfg.budget_minutes, started or time.monotonic(), passes_after=after)
        )
    for callback in callbacks:  # last.ckpt names the task, for a resumed run to continue it
        if isinstance(callback, ResumeCheckpoint) and task is not None:
            callback.task_id = str(task.id)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        precision=trainer_precision(cfg.trainer),  # auto: what suits this machine
        callbacks=callbacks,
        logger=instantiate(cfg.logger.lightning, task=task),
        plugins=[AtomicCheckpointIO()],
        **budget_arguments(cfg),
    )
    plan_the_batch(cfg, trainer, module, datamodule.batch_size)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:  # SIGTERM or a first Ctrl+C: checkpoint written, now exit
        _exit_interrupted(trainer)
    best = _best_score(trainer, cfg.optimized_metric)
    metrics = scalars(trainer.callback_metrics)  # the last epoch's (test replaces them)
    if cfg.get("test"):
        datamodule.setup("test")
    if cfg.get("test") and datamodule.has_split("test"):
        trainer.test(
            module, datamodule=datamodule, ckpt_path=_best_path(trainer), weights_only=True
        )
        metrics.update(scalars(trainer.callback_metrics))
    results = next((c for c in trainer.callbacks if isinstance(c, RunResults)), None)
    return TrainResult(
        metric=cfg.optimized_metric,
        best=best,
        metrics=metrics,
        best_checkpoint=_best_path(trainer),
        output_dir=str(cfg.paths.output_dir),
        best_epoch=results.best.get("epoch") if results is not None else None,
        best_metrics=dict(results.best.get("metrics", {})) if results is not None else {},
        results_dir=str(results.dirpath) if results is not None else None,
        epochs=int(trainer.current_epoch),
        steps=int(trainer.global_step),
    )


def _test_split_configured(cfg: DictConfig) -> bool:
    """Whether the data config names a test split (before the data is indexed)."""
    source = cfg.data.source
    if str(source.get("_target_", "")).endswith(".ShapesSource"):
        return bool(source.get("num_test"))
    return source.get("test") is not None


def budget_arguments(cfg: DictConfig) -> dict:
    """``budget_minutes``: train for that wall-clock time (``trainer.max_time``), however many
    epochs fit; the learning-rate schedule follows the share of the budget used, so it ends
    with the time (``lightdet.lightning.schedulers.budget_progress``). The
    :class:`~lightdet.lightning.budget.BudgetKeeper` then shortens it by the setup and the
    passes after training, so that the run ends within the minutes."""
    minutes = cfg.get("budget_minutes")  # > 0: checked at composition (runs.preflight)
    if minutes is None:
        return {}
    return {"max_time": clock(float(minutes)), "max_epochs": -1}


def plan_the_batch(cfg: DictConfig, trainer: pl.Trainer, module, batch_size: int) -> None:
    """Accumulation from the nominal batch, and the learning rate for the effective batch
    (``optimization.*``; see :mod:`lightdet.lightning.optimization`), said in one line."""
    options = cfg.get("optimization") or {}
    plan = plan_batch(
        batch_size,
        trainer.world_size,
        nominal_batch_size=options.get("nominal_batch_size"),
        lr_reference_batch_size=options.get("lr_reference_batch_size"),
        lr_scaling=options.get("lr_scaling", "linear"),
        accumulation=int(trainer.accumulate_grad_batches),
    )
    trainer.accumulate_grad_batches = plan.accumulation
    module.lr_scale = plan.lr_scale
    if is_global_zero():
        log.info(plan.describe(OmegaConf.select(cfg, "model.optimizer.lr", default=None)))


def scalars(metrics) -> dict[str, float]:
    """Lightning's logged metrics (0-d tensors) as plain floats."""
    return {k: float(v) for k, v in metrics.items()}


def _callbacks(cfg: DictConfig, ckpt_path: str | None) -> list:
    """The configured callbacks. A resumed run keeps writing checkpoints where it was stopped
    (so the best score so far carries over and ``auto`` finds them again), and always has the
    ResumeCheckpoint, which mid-epoch resume needs."""
    configs = dict(cfg.get("callbacks") or {})
    folder = Path(ckpt_path).parent if ckpt_path else None
    if folder is not None and folder.name == "checkpoints" and configs.get("model_checkpoint"):
        configs["model_checkpoint"] = OmegaConf.merge(
            configs["model_checkpoint"], {"dirpath": str(folder)}
        )
    callbacks = []
    for name, config in configs.items():
        callback = instantiate_callback(config)
        if callback is None:
            continue
        dirpath = getattr(callback, "dirpath", None)  # checkpoints: lightdet's folders only
        if dirpath and (folder is None or Path(dirpath) != folder):
            outputs.claim(dirpath, f"callbacks.{name}.dirpath", "checkpoints")
        callbacks.append(callback)
    if not any(isinstance(c, ResumeCheckpoint) for c in callbacks):
        callbacks.append(ResumeCheckpoint())
    callbacks.append(
        ValidationLine(
            OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor", default=None) or "val/map"
        )
    )
    if cfg.trainer.get("enable_progress_bar", True) is not False:
        callbacks.append(ProgressBar())  # Lightning's, without v_num
    return callbacks


def instantiate_callback(config):
    """A callback from its config; None for a config that is null or says ``enabled: false``
    (a switch of lightdet's, not passed to the callback)."""
    if config is None or config.get("enabled", True) is False:
        return None
    if "enabled" in config:
        config = OmegaConf.to_container(config, resolve=True)
        config.pop("enabled")
    return instantiate(config)


def _exit_interrupted(trainer: pl.Trainer) -> None:
    """After a SIGTERM/SIGINT stop (checkpoint written by ResumeCheckpoint), exit with
    128 + the signal number, as a process killed by it would, so schedulers see a failure."""
    signum = signal.SIGTERM
    for callback in trainer.callbacks:
        if isinstance(callback, ResumeCheckpoint) and callback.signal is not None:
            signum = callback.signal
    log.warning("stopped by %s at step %d", signal.Signals(signum).name, trainer.global_step)
    _stop_loader_workers(trainer)
    raise SystemExit(128 + int(signum))


def _stop_loader_workers(trainer: pl.Trainer) -> None:
    """Shut the loaders' worker processes down the peaceful way before exiting. Workers ignore
    SIGTERM (so a signal to the whole job reaches only the graceful stop), and a validation
    loader stopped mid-way kept its (persistent) workers: at exit, multiprocessing's clean-up
    sent them SIGTERM and waited for them forever."""
    loaders = [trainer.train_dataloader, trainer.val_dataloaders]
    for loader in loaders:
        for one in loader if isinstance(loader, list | tuple) else [loader]:
            iterator = getattr(one, "_iterator", None)
            if iterator is not None and hasattr(iterator, "_shutdown_workers"):
                iterator._shutdown_workers()


def _best_score(trainer: pl.Trainer, metric: str) -> float | None:
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.monitor == metric and ckpt.best_model_score is not None:
        return float(ckpt.best_model_score)  # best over the run, not the last value
    value = trainer.callback_metrics.get(metric)
    return float(value) if value is not None else None


def _best_path(trainer: pl.Trainer) -> str | None:
    ckpt = trainer.checkpoint_callback
    return (ckpt.best_model_path or None) if ckpt is not None else None
