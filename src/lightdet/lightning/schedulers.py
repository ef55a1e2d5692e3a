"""Step-wise learning-rate schedules with linear warm-up.

Each builder takes the optimizer and the run's ``total_steps`` (Lightning's
``estimated_stepping_batches``), so milestones are fractions of the run and a schedule stays right
when the epoch count or dataset size changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup(step: int, warmup_steps: int, warmup_factor: float) -> float:
    if step >= warmup_steps:
        return 1.0
    alpha = step / max(1, warmup_steps)
    return warmup_factor * (1.0 - alpha) + alpha


def warmup_cosine(
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 500,
    warmup_factor: float = 0.001,
    min_lr_ratio: float = 0.01,
) -> LambdaLR:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` x the base rate at ``total_steps``."""
    warmup_steps = min(warmup_steps, max(0, total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps, warmup_factor)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_multistep(
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 500,
    warmup_factor: float = 0.001,
    milestones: Sequence[float] = (0.615, 0.846),
    gamma: float = 0.1,
) -> LambdaLR:
    """Linear warm-up, then the rate x ``gamma`` at each milestone (fractions of ``total_steps``).

    The default milestones are torchvision's detection recipe: epochs 16 and 22 of 26.
    """
    warmup_steps = min(warmup_steps, max(0, total_steps - 1))
    steps = sorted(int(m * total_steps) for m in milestones)

    def factor(step: int) -> float:
        decay = gamma ** sum(step >= s for s in steps)
        return _warmup(step, warmup_steps, warmup_factor) * decay

    return LambdaLR(optimizer, factor)
