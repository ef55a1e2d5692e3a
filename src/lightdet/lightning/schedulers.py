"""Step-wise learning-rate schedules with linear warm-up.

Each builder takes the optimizer and the run's ``total_steps`` (Lightning's
``estimated_stepping_batches``), so milestones are fractions of the run and a schedule stays right
when the epoch count or dataset size changes. A run with a wall-clock budget and no step count
(``trainer.max_time`` with ``trainer.max_epochs=-1``) passes ``progress`` instead: the fraction of
the budget used so far, so the schedule completes when the time is up, however fast the steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup(
    step: int,
    warmup_steps: int,
    warmup_factor: float,
    progress: Callable[[], float] | None = None,
    warmup_fraction: float = 1.0,
) -> float:
    """The warm-up factor at ``step``: linear from ``warmup_factor`` to 1 over
    ``warmup_steps``, or (a budget's ``progress``) over ``warmup_fraction`` of the budget,
    whichever ends first."""
    alpha = step / max(1, warmup_steps)
    if progress is not None:
        alpha = max(alpha, float(progress()) / max(warmup_fraction, 1e-9))
    if alpha >= 1.0:
        return 1.0
    return warmup_factor * (1.0 - alpha) + alpha


def _progress(
    total_steps: int | None, warmup_steps: int, progress: Callable[[], float] | None
) -> Callable[[int], float]:
    """Fraction of the run done at a step, in [0, 1]: by steps, or by the budget used."""
    if progress is not None:
        return lambda step: min(1.0, max(0.0, float(progress())))
    if total_steps is None:
        raise ValueError("a schedule needs total_steps or progress")
    return lambda step: min(1.0, max(0, step - warmup_steps) / max(1, total_steps - warmup_steps))


def _warmup_steps(warmup_steps: int, total_steps: int | None, warmup_fraction: float) -> int:
    """At most ``warmup_fraction`` of the run's steps: a short run leaves warm-up too."""
    if total_steps is None:
        return warmup_steps
    return min(warmup_steps, max(0, total_steps - 1), max(1, int(warmup_fraction * total_steps)))


def warmup_cosine(
    optimizer: Optimizer,
    *,
    total_steps: int | None,
    warmup_steps: int = 500,
    warmup_factor: float = 0.001,
    warmup_fraction: float = 0.1,
    min_lr_ratio: float = 0.01,
    progress: Callable[[], float] | None = None,
) -> LambdaLR:
    """Linear warm-up (``warmup_steps``, at most ``warmup_fraction`` of the run's steps or
    budget), then cosine decay to ``min_lr_ratio`` x the base rate at ``total_steps`` (or when
    ``progress()`` reaches 1)."""
    warmup_steps = _warmup_steps(warmup_steps, total_steps, warmup_fraction)
    done = _progress(total_steps, warmup_steps, progress)

    def factor(step: int) -> float:
        warm = _warmup(step, warmup_steps, warmup_factor, progress, warmup_fraction)
        if warm < 1.0:
            return warm
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * done(step)))

    return LambdaLR(optimizer, factor)


def warmup_multistep(
    optimizer: Optimizer,
    *,
    total_steps: int | None,
    warmup_steps: int = 500,
    warmup_factor: float = 0.001,
    warmup_fraction: float = 0.1,
    milestones: Sequence[float] = (0.615, 0.846),
    gamma: float = 0.1,
    progress: Callable[[], float] | None = None,
) -> LambdaLR:
    """Linear warm-up (``warmup_steps``, at most ``warmup_fraction`` of the run's steps or
    budget), then the rate x ``gamma`` at each milestone (fractions of ``total_steps``, or of
    the budget ``progress()`` reports).

    The default milestones are torchvision's detection recipe: epochs 16 and 22 of 26.
    """
    warmup_steps = _warmup_steps(warmup_steps, total_steps, warmup_fraction)
    if progress is None and total_steps is not None:
        steps = sorted(int(m * total_steps) for m in milestones)
        done = lambda step: step  # noqa: E731  milestones in steps, as before
    else:
        steps = sorted(milestones)
        done = _progress(total_steps, warmup_steps, progress)

    def factor(step: int) -> float:
        decay = gamma ** sum(done(step) >= s for s in steps)
        return _warmup(step, warmup_steps, warmup_factor, progress, warmup_fraction) * decay

    return LambdaLR(optimizer, factor)


def budget_progress(trainer) -> Callable[[], float]:
    """The fraction of the wall-clock budget (``trainer.max_time``) a run has used: training time
    as Lightning's Timer counts it (a resumed run's earlier time included), validation too, over
    the Timer's duration as it stands at each call (a budget keeper may shorten it).

    Raises:
        ValueError: the run has neither a step count nor a time budget.
    """
    from pytorch_lightning.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is None or timer._duration is None:
        raise ValueError(
            "trainer.max_epochs=-1 trains without end: give a wall-clock budget "
            "(trainer.max_time=DD:HH:MM:SS) or trainer.max_steps"
        )
    # read at each step: BudgetKeeper shortens the Timer's duration once it has measured the
    # setup and the validations, and the schedule must end when the shortened budget does
    return lambda: timer.time_elapsed() / max(float(timer._duration), 1e-9)


def clock(minutes: float) -> str:
    """Minutes as Lightning's ``max_time`` string, ``DD:HH:MM:SS`` (at least one second)."""
    seconds = max(1, round(float(minutes) * 60))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
