"""An exponential moving average (EMA) of the weights, on Lightning's ``WeightAveraging``.

What uses which weights:

- validation (so ``val/map``, the best checkpoint and the run's results) scores the average;
- every checkpoint's ``state_dict`` holds the average, so ``evaluate``, ``predict``, ``export``
  and the model registered in ClearML use it without knowing about EMA; a full checkpoint
  (``last.ckpt``) keeps the raw weights (``current_model_state``) and the average's own state
  for resuming, which restores both exactly;
- after training, the module holds the average (the test split is scored with it).

The decay ramps up as in YOLOv5/Ultralytics, ``decay * (1 - exp(-updates / tau))``, so the
average follows the fast early changes of a short run and smooths the end of it.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import WeightAveraging
from torch import Tensor


class RampedEMA:
    """``avg_fn`` for :class:`torch.optim.swa_utils.AveragedModel`: the average moves towards
    the current weights by ``1 - decay * (1 - exp(-n / tau))`` at its ``n``-th update (n >= 1;
    the first one copies the weights)."""

    def __init__(self, decay: float, tau: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        if tau <= 0:
            raise ValueError(f"callbacks.ema.tau must be > 0 (steps), got {tau}")
        self.decay, self.tau = float(decay), float(tau)

    def factor(self, updates: int) -> float:
        """The decay at the ``updates``-th update."""
        return self.decay * (1.0 - math.exp(-updates / self.tau))

    def __call__(self, averaged: Tensor, current: Tensor, num_averaged: Tensor | int) -> Tensor:
        d = self.factor(int(num_averaged))
        if not averaged.is_floating_point():  # integer buffers (BatchNorm's batch count)
            return current
        return averaged * d + current * (1.0 - d)


class EMA(WeightAveraging):
    """EMA of the weights (parameters and buffers), updated after every optimizer step.

    Args:
        decay: the decay the ramp reaches (Ultralytics: 0.9999 for long GPU runs).
        tau: ramp length in optimizer steps: the decay is 63 % of ``decay`` after ``tau``
            updates, 95 % after ``3 tau``.
        start_step: the first optimizer step (0-based) that updates the average.
    """

    def __init__(self, decay: float = 0.999, tau: float = 200.0, start_step: int = 0) -> None:
        self.ramp = RampedEMA(decay, tau)
        super().__init__(use_buffers=True, avg_fn=self.ramp)
        self.start_step = int(start_step)
        self._swapped = False  # the module holds the average (inside a validation)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and step_idx >= self.start_step

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._average_model is not None and not self._swapped:
            self._swap_models(pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._average_model is not None and self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def averaged_state_dict(self, pl_module: pl.LightningModule) -> dict[str, Tensor]:
        """The module's state dict with the average's values."""
        if self._swapped or self._average_model is None:  # the module holds the average
            return {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        state = self._average_model.state_dict()
        return {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}

    def raw_state_dict(self, pl_module: pl.LightningModule) -> dict[str, Tensor]:
        """The module's state dict with the raw (trained) values."""
        if not self._swapped:
            return pl_module.state_dict()
        state = self._average_model.state_dict()  # the swap parked the raw values there
        return {k[len("module.") :]: v for k, v in state.items() if k.startswith("module.")}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """A full checkpoint: ``state_dict`` the average, ``current_model_state`` the raw
        weights, ``averaging_state`` the update count. Right also when the save happens inside
        a validation (a SIGTERM there), where the module holds the average."""
        if self._average_model is None:
            return
        checkpoint["current_model_state"] = self.raw_state_dict(pl_module)
        checkpoint["state_dict"] = self.averaged_state_dict(pl_module)
        checkpoint["averaging_state"] = {
            k: v for k, v in self._average_model.state_dict().items() if not k.startswith("module.")
        }

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average_model is None or trainer.state.fn != "fit":
            return  # testing a weights-only best checkpoint after training: nothing to restore
        super().on_load_checkpoint(trainer, pl_module, checkpoint)


def averaged_state_for_weights_only(trainer: pl.Trainer | None, pl_module, checkpoint) -> None:
    """Lightning calls no callback hook for a weights-only save (the best checkpoint): give it
    the average too, so that what is validated is what is kept."""
    if trainer is None or "callbacks" in checkpoint:
        return
    for callback in trainer.callbacks:
        if isinstance(callback, EMA) and callback._average_model is not None:
            checkpoint["state_dict"] = callback.averaged_state_dict(pl_module)
