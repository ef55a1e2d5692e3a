"""A wall-clock budget that the whole run keeps, the final validation and test included.

Lightning's ``max_time`` (its :class:`~pytorch_lightning.callbacks.Timer`) counts training
from its start and stops training when the time is up; what follows (the validation of the
last epoch, the test pass, the summary) came on top, and the setup before it (indexing the
data, building the model) was not counted: ``BUDGET=2`` runs took about 3 minutes.
:class:`BudgetKeeper` gives the Timer the time left for training: the budget less the time
the run took to start, less what the passes after training will take, measured on this run
(the sanity check's batch times the validation batches, then each validation), plus a margin.
The learning-rate schedule follows the same Timer, so it still ends when training ends.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, Timer
from pytorch_lightning.utilities import rank_zero_info

# what follows the last pass (results/ and its plots, the model registry, closing the ClearML
# task, the summary): measured 6 s for a tiny run on a busy 2-core machine, and a share of
# the budget for larger ones
END_SECONDS, MARGIN = 6.0, 0.02


class BudgetKeeper(Callback):
    """Stops training early enough for the run to end within ``minutes`` of ``started``.

    Args:
        minutes: the run's budget.
        started: ``time.monotonic()`` when the run began (before the data and the model).
        passes_after: validation-sized passes after training: 1 (the last validation), 2
            with a test pass of about the validation's size.
    """

    def __init__(self, minutes: float, started: float, passes_after: float = 1.0) -> None:
        self.budget = 60.0 * float(minutes)
        self.started = started
        self.passes_after = float(passes_after)
        self.validation_s: float | None = None  # the last validation pass's duration
        self._validation_start: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._give_timer(trainer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validation_start = time.monotonic()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._validation_start is None:
            return
        took = time.monotonic() - self._validation_start
        if trainer.sanity_checking:  # a batch or two: scaled to the whole pass
            checked = max(1, _sum(trainer.num_sanity_val_batches))
            took *= max(1, _sum(trainer.num_val_batches)) / checked
        self.validation_s = took
        self._give_timer(trainer)

    def reserve(self) -> float:
        """Seconds kept for what follows training."""
        return (self.validation_s or 0.0) * self.passes_after + END_SECONDS + MARGIN * self.budget

    def _give_timer(self, trainer: pl.Trainer) -> None:
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        if timer is None or timer._duration is None:
            return
        before_training = (timer.start_time() or time.monotonic()) - self.started
        left = self.budget - before_training - self.reserve()
        timer._duration = max(1.0, left)  # what budget_progress and the stop both read
        if self.validation_s is not None and trainer.sanity_checking:
            rank_zero_info(
                f"budget: {self.budget / 60:g} min: {timer._duration / 60:.1f} min of training "
                f"after {before_training:.0f} s of setup, {self.reserve():.0f} s kept for "
                "the validation, test and summary after it"
            )


def _sum(batches) -> int:
    if isinstance(batches, int | float):
        return int(batches) if batches != float("inf") else 1
    return int(sum(b for b in batches if b != float("inf")))
