"""Lightning callbacks that fill the ClearML task: reports per validation and registered models.

Both act on global rank 0 only and do nothing when the run has no ClearML logger.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from lightdet.evaluation.report import model_card
from lightdet.guard import load_checkpoint
from lightdet.tracking import bounded
from lightdet.tracking.clearml import ClearMLLogger, register_model
from lightdet.tracking.reports import (
    report_ap_table,
    report_confusion,
    report_dataset_summary,
    report_debug_images,
    report_errors,
    report_pr_curves,
    report_train_samples,
)


def _clearml(trainer: pl.Trainer) -> ClearMLLogger | None:
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, ClearMLLogger) and logger.experiment is not None:
            return None if bounded.lost(logger.experiment) else logger  # its server stopped
    return None


def _size(value) -> int | str | None:
    """A transform's size setting as one value (torchvision keeps ``min_size`` as a tuple)."""
    if isinstance(value, (tuple, list)):
        return value[0] if len(value) == 1 else "-".join(str(v) for v in value)
    return value


def _task(trainer: pl.Trainer):
    clearml = _clearml(trainer)
    return clearml.experiment if clearml is not None else None


class ClearMLReports(Callback):
    """Dataset summary and augmented samples at the start; per validation (and test): per-class AP
    table, PR curves, confusion matrix, and debug images of a fixed validation batch.

    Args:
        num_images: debug images per validation (from the first, unshuffled, batch).
        num_train_samples: augmented training samples shown at the start.
        score_threshold: predictions drawn on debug images score at least this.
    """

    def __init__(
        self, num_images: int = 8, num_train_samples: int = 8, score_threshold: float = 0.3
    ):
        self.num_images = num_images
        self.num_train_samples = num_train_samples
        self.score_threshold = score_threshold
        self._debug_batch: tuple | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        task, datamodule = _task(trainer), trainer.datamodule
        if task is None or datamodule is None:
            return
        datamodule.setup("test")  # the summary covers every split the data has
        splits = {s: d.records for s, d in datamodule.datasets.items()}
        checks = datamodule.check_rows() if hasattr(datamodule, "check_rows") else []
        bounded.send(
            task,
            "reporting the dataset summary",
            report_dataset_summary,
            task.get_logger(),
            splits,
            datamodule.class_names,
            checks,
        )
        train = datamodule.datasets.get("train")
        if train is not None and len(train):
            samples = [train[i] for i in range(min(self.num_train_samples, len(train)))]
            images, targets = zip(*samples)
            bounded.send(
                task,
                "reporting training samples",
                report_train_samples,
                task.get_logger(),
                images,
                targets,
                datamodule.class_names,
            )

    def _keep_batch(self, trainer, outputs, batch, batch_idx: int) -> None:
        if batch_idx != 0 or trainer.sanity_checking or _task(trainer) is None:
            return
        images, targets = batch
        n = self.num_images
        self._debug_batch = (
            [i.cpu() for i in images[:n]],
            [{k: v.cpu() for k, v in t.items()} for t in targets[:n]],
            [{k: v.cpu() for k, v in p.items()} for p in outputs[:n]],
        )

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self._keep_batch(trainer, outputs, batch, batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._keep_batch(trainer, outputs, batch, batch_idx)

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        clearml = _clearml(trainer)
        report = getattr(pl_module, "last_report", None)  # the pass's one report
        if clearml is None or trainer.sanity_checking or report is None:
            return
        # the step Lightning just logged this evaluation's scalars at, so plots line up with them
        it, task = clearml.last_step, clearml.experiment
        batch, self._debug_batch = self._debug_batch, None
        bounded.send(
            task,
            f"reporting the {report.split} plots",
            self._report_evaluation,
            task.get_logger(),
            report,
            it,
            batch,
        )

    def _report_evaluation(self, logger, report, it: int, batch) -> None:
        stage, names = report.split, report.class_names
        report_ap_table(logger, report, it)
        report_pr_curves(logger, report, it)
        # at the pass's F1-optimal threshold (make eval's matrix); one title for every pass,
        # so ClearML shows the passes as one plot over iterations
        report_confusion(logger, report.confusion, names, stage, it)
        report_errors(logger, report, it)
        if batch is not None:
            report_debug_images(logger, *batch, names, stage, it, self.score_threshold)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, pl_module)  # after the module's epoch-end hook computed the metrics

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, pl_module)


def export_weights(checkpoint_path: str, kind: str) -> str:
    """The file to register for a checkpoint, ``model_<kind>.ckpt`` beside it: a fixed name, so
    updating the registered model replaces its file (also in an offline session) instead of
    adding one. A hard link to the checkpoint when that holds weights only (the default best
    checkpoint: no extra disk), else a lean copy without the optimizer state (a third of the
    size). Either loads with lightdet's commands (evaluate, predict, export) and with
    ``torch.load(weights_only=True)``: the detector's weights under ``state_dict`` (keys
    ``net.<torchvision name>``), the class names, id map and config under
    ``hyper_parameters``."""
    from lightdet.guard import inspect_checkpoint

    path = Path(checkpoint_path).with_name(f"model_{kind}.ckpt")
    if not inspect_checkpoint(checkpoint_path).resumable:
        link = path.with_name(f".{path.name}.link")
        try:
            link.unlink(missing_ok=True)
            os.link(checkpoint_path, link)
            os.replace(link, path)  # the registered name now names the new best
        except OSError:  # a file system without hard links: the checkpoint under its own name
            return str(checkpoint_path)
        return str(path)
    ckpt = load_checkpoint(checkpoint_path)
    lean = {
        "state_dict": {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")},
        "hyper_parameters": ckpt.get("hyper_parameters", {}),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "source_checkpoint": Path(checkpoint_path).name,
    }
    torch.save(lean, path)
    return str(path)


class ClearMLModelRegistry(Callback):
    """Registers the best checkpoint's weights as a ClearML output model, with the class names as
    its label enumeration, the run config and the best score (:func:`export_weights`: the best
    checkpoint itself, weights only by default).

    Lightning runs ``ModelCheckpoint`` after every other callback at the end of an epoch, so a
    new best file is looked for at the start of the next epoch and when training ends: the best
    of epoch ``e`` is registered before epoch ``e + 1`` trains (a crash in it loses nothing).
    ``last.ckpt``, the full training state for resuming, stays in the run folder only.
    """

    def __init__(self) -> None:
        self._best_path: str | None = None
        self._models: dict[str, Any] = {}

    def _register(self, trainer: pl.Trainer, pl_module, kind: str, path: str) -> None:
        task, ckpt = _task(trainer), trainer.checkpoint_callback
        if task is None or not path:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if kind == "best" and ckpt is not None and ckpt.best_model_score is not None:
            metrics[ckpt.monitor] = float(ckpt.best_model_score)
        report = getattr(pl_module, "last_report", None)  # the best's: it was just saved
        evaluation = None
        if kind == "best" and report is not None:
            transform = getattr(pl_module.net, "transform", None)
            sizes = {k: getattr(transform, k, None) for k in ("min_size", "max_size")}
            evaluation = {
                **model_card(report),
                **{f"input_{k}": _size(v) for k, v in sizes.items()},
            }
        self._models[kind] = register_model(
            task,
            export_weights(path, kind),
            model=self._models.get(kind),
            name=f"{task.name} {kind}",
            class_names=pl_module.class_names,
            config=pl_module.hparams.get("config", {}),
            metrics=metrics,
            iteration=trainer.global_step,
            evaluation=evaluation,
        )

    def _register_new_best(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and ckpt.best_model_path and ckpt.best_model_path != self._best_path:
            self._best_path = ckpt.best_model_path
            self._register(trainer, pl_module, "best", ckpt.best_model_path)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._register_new_best(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._register_new_best(trainer, pl_module)
