"""Cleaning a detector's raw predictions, shared by evaluation and :class:`lightdet.Detector`
(torch only: predicting must not import the metric libraries)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def finite_predictions(preds: Sequence[dict[str, Tensor]]) -> tuple[list[dict[str, Tensor]], int]:
    """Drop predictions with a non-finite box or score (pycocotools scores a NaN box as a match).

    Returns:
        the cleaned predictions and how many were dropped.
    """
    clean, dropped = [], 0
    for p in preds:
        keep = torch.isfinite(p["boxes"]).all(dim=1) & torch.isfinite(p["scores"])  # [N]
        dropped += int((~keep).sum())
        clean.append({k: p[k][keep] for k in ("boxes", "scores", "labels")})
    return clean, dropped
