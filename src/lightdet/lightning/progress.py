"""What a training run prints while it runs: Lightning's bar without the logger version, and
one line per validation with the headline metrics, the best so far and the time left."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, Timer, TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_info


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, without ``v_num`` (the ClearML task id's last characters)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ValidationLine(Callback):
    """After each validation: ``epoch 3 (4/12)  val/map 0.4120  map_50 0.7030  map_small
    0.2500  train/loss 0.512 | best 0.4150 (epoch 2) | 4m10s, about 9m50s left``.

    The time left is the mean epoch time so far times the epochs to go, or what remains of
    ``trainer.max_time`` when that ends the run first. Written between the progress bars when
    they are shown, logged otherwise.
    """

    def __init__(self, metric: str = "val/map") -> None:
        self.metric = metric
        self._start: float | None = None
        self._first_epoch = 0
        self._best: tuple[float, int] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._first_epoch = time.monotonic(), trainer.current_epoch  # resumed: > 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self._start is None or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if self.metric not in metrics:
            return
        epoch, value = trainer.current_epoch, metrics[self.metric]
        if self._best is None or value > self._best[0]:
            self._best = (value, epoch)
        stage = self.metric.split("/", 1)[0]
        shown = [f"{self.metric} {value:.4f}"] + [
            f"{name} {metrics[f'{stage}/{name}']:.4f}"
            for name in ("map_50", "map_small")
            if f"{stage}/{name}" in metrics
        ]
        if "train/loss" in metrics:
            shown.append(f"train/loss {metrics['train/loss']:.3f}")
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        # epochs counted from 0, as Lightning's bar and the checkpoint names count them
        line = (
            f"epoch {epoch}{f' ({epoch + 1}/{total})' if total else ''}  "
            + "  ".join(shown)
            + f" | best {self._best[0]:.4f} (epoch {self._best[1]})"
        )
        elapsed = time.monotonic() - self._start
        left = []
        if total:  # the mean epoch of this process (a resumed run started later)
            left.append(elapsed / max(1, epoch + 1 - self._first_epoch) * (total - epoch - 1))
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        if timer is not None and timer.time_remaining("train") is not None:
            left.append(timer.time_remaining("train"))
        line += f" | {_duration(elapsed)}"
        line += f", about {_duration(min(left))} left" if left else ""
        bar = trainer.progress_bar_callback
        if bar is not None and bar.is_enabled:
            bar.print(line)  # between the bars, not through them
        else:
            rank_zero_info(line)
