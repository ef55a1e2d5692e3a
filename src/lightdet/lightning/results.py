"""Results a user can look at without a ClearML server: the run folder's ``results/``.

:class:`RunResults` keeps the curves of a training run (train loss parts and lr, epoch means;
val mAP per epoch; by optimizer step too, and ``curves.png`` is drawn by step when the run
has fewer than 5 epochs) and, at every new best epoch, writes that validation's evaluation report
(the system's one report of the pass, :mod:`lightdet.evaluation.report`: PR curves, F1
against confidence, confusion matrix, a mosaic of validation images with ground truth and
predictions, metrics and tables). At the end of training it writes ``curves.png`` and
``results.csv``, and keeps the best epoch's F1-optimal score threshold beside the best
checkpoint for ``predict``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from lightdet import outputs
from lightdet.evaluation.report import write_report
from lightdet.evaluation.thresholds import save_threshold

log = logging.getLogger(__name__)
_TRAIN_CURVES = ("train/loss", "train/lr")  # and every train/loss_* part
_VAL_CURVES = ("val/map", "val/map_50", "val/map_75", "val/map_small")
# curves.png by step below this many epochs: two epochs by epoch are two dots
STEP_AXIS_BELOW_EPOCHS = 5
MAX_STEP_POINTS = 1000  # per curve: neighbours are merged (bucket means) beyond it


class RunResults(Callback):
    """Curves and the best epoch's evaluation report, as files in ``dirpath``.

    Args:
        dirpath: the results folder (default config: ``<run folder>/results``).
        monitor: the metric that decides the best epoch (as the checkpoint's).
        mode: ``max`` or ``min``.
        num_images: validation images in the predictions mosaic (at most the 16 the system's
            recorder keeps).
    """

    def __init__(
        self,
        dirpath: str,
        monitor: str = "val/map",
        mode: Literal["max", "min"] = "max",
        num_images: int = 16,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"RunResults: mode must be 'max' or 'min', got {mode!r}")
        self.dirpath = Path(dirpath)
        self.monitor, self.mode = monitor, mode
        self.num_images = num_images
        self.history: dict[str, list[tuple[int, float]]] = {}  # name -> [(epoch, value)]
        # the same curves by optimizer step, for short runs: name -> [(step, value)], train
        # values as means over buckets of `_stride` steps, val at the step it ran
        self.step_history: dict[str, list[tuple[int, float]]] = {}
        self.best: dict[str, Any] = {}  # epoch, value, metrics, threshold
        self._sums: dict[str, list[float]] = {}
        self._bucket: dict[str, list[float]] = {}
        self._stride = 1
        self._recorded_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        for name, value in trainer.callback_metrics.items():
            if name in _TRAIN_CURVES or name.startswith("train/loss_"):
                for sums in (self._sums, self._bucket):
                    total = sums.setdefault(name, [0.0, 0])
                    total[0] += float(value)
                    total[1] += 1
        if step % self._stride == 0 and step != self._recorded_step:  # once a step (accumulation)
            self._recorded_step = step
            for name, (total, count) in self._bucket.items():
                self.step_history.setdefault(name, []).append((step, total / count))
            self._bucket = {}
            self._thin()

    def _thin(self) -> None:
        """Halve every curve (means of neighbours) once one exceeds MAX_STEP_POINTS."""
        if max((len(v) for v in self.step_history.values()), default=0) <= MAX_STEP_POINTS:
            return
        for name, points in self.step_history.items():
            if name.startswith("val/"):
                continue
            pairs = zip(points[::2], points[1::2])
            merged = [(b[0], (a[1] + b[1]) / 2) for a, b in pairs]
            self.step_history[name] = merged + points[len(merged) * 2 :]
        self._stride *= 2

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        for name, (total, count) in self._sums.items():
            self.history.setdefault(name, []).append((trainer.current_epoch, total / count))
        self._sums = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if k.startswith("val/") and v.numel() == 1
        }
        epoch = trainer.current_epoch
        for name in _VAL_CURVES:
            if name in metrics:
                self.history.setdefault(name, []).append((epoch, metrics[name]))
                self.step_history.setdefault(name, []).append((trainer.global_step, metrics[name]))
        value = metrics.get(self.monitor)
        if value is None or not self._improves(value):
            return
        self.best = {"epoch": epoch, "value": value, "metrics": metrics}
        if trainer.is_global_zero:
            self._write_best_report(pl_module)

    def _improves(self, value: float) -> bool:
        if not self.best:
            return True
        return value > self.best["value"] if self.mode == "max" else value < self.best["value"]

    def _write_best_report(self, pl_module) -> None:
        folder = outputs.mark(self.dirpath, "results")
        report = pl_module.last_report  # the pass's one report: the logged metrics' own
        datamodule = getattr(pl_module.trainer, "datamodule", None)
        dataset = (getattr(datamodule, "datasets", None) or {}).get("val")
        write_report(
            report,
            folder,
            pl_module.recorder.samples[: self.num_images],
            pictures=dataset.image_of if dataset is not None else None,
            anchor_sides=self._anchor_sides(pl_module, report),
        )
        self.best["threshold"] = report.threshold["all"]
        self.best["per_class_threshold"] = {n: t for n, t in report.threshold.items() if n != "all"}

    def _anchor_sides(self, pl_module, report) -> list[float]:
        """The model's anchor sides in the evaluated images' pixels (worked out once)."""
        if getattr(self, "_anchors", None) is None:
            from lightdet.models.anchor_fit import anchor_sides

            first = report.images[0] if report.images else None
            size = (first.height, first.width) if first else None
            self._anchors = anchor_sides(pl_module.net, size) if size else []
        return self._anchors

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        from lightdet.evaluation.plots import plot_training_curves

        folder = outputs.mark(self.dirpath, "results")
        epochs = {e for name, points in self.history.items() for e, _ in points}
        if len(epochs) < STEP_AXIS_BELOW_EPOCHS and self.step_history:
            plot_training_curves(self.step_history, folder / "curves.png", x="step")
        else:
            plot_training_curves(self.history, folder / "curves.png")
        self._write_csv(folder / "results.csv")
        best_path = (
            trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        )
        if best_path and self.best.get("threshold"):
            save_threshold(
                best_path,
                self.best["threshold"],
                self.best["per_class_threshold"],
                f"validation of epoch {self.best['epoch']} (training)",
            )

    def _write_csv(self, path: Path) -> None:
        names = sorted(self.history)
        epochs = sorted({e for points in self.history.values() for e, _ in points})
        table = {name: dict(points) for name, points in self.history.items()}
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", *names])
            for epoch in epochs:
                writer.writerow([epoch, *(table[n].get(epoch, "") for n in names)])

    def state_dict(self) -> dict[str, Any]:
        """History and best epoch, so a resumed run's curves and report continue."""
        return {
            "history": {k: [list(p) for p in v] for k, v in self.history.items()},
            "step_history": {k: [list(p) for p in v] for k, v in self.step_history.items()},
            "stride": self._stride,
            "best": dict(self.best),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(p) for p in v] for k, v in state_dict["history"].items()}
        steps = state_dict.get("step_history") or {}  # absent in older checkpoints
        self.step_history = {k: [tuple(p) for p in v] for k, v in steps.items()}
        self._stride = int(state_dict.get("stride", 1))
        self.best = dict(state_dict.get("best") or {})
