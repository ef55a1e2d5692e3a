"""Cleaning a detector's raw predictions, shared by evaluation and :class:`lightdet.Detector`
(torch only: predicting must not import the metric libraries)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def finite_predictions(preds: Sequence[dict[str, Tensor]]) -> tuple[list[dict[str, Tensor]], int]:
    """Drop predictions with a non-finite box or score (pycocotools scores a NaN box as a match),
    and give boxes and scores as float32: under bf16 autocast the detectors return bf16, and
    torchmetrics' conversion to COCO's ``[x, y, w, h]`` would then round each width and height
    to bf16's 8-bit mantissa (the default RetinaNet's val/map moved by 8e-4).

    Returns:
        the cleaned predictions and how many were dropped.
    """
    clean, dropped = [], 0
    for p in preds:
        keep = torch.isfinite(p["boxes"]).all(dim=1) & torch.isfinite(p["scores"])  # [N]
        dropped += int((~keep).sum())
        clean.append({"boxes": p["boxes"][keep].float(), "scores": p["scores"][keep].float(),
                      "labels": p["labels"][keep]})  # fmt: skip
    return clean, dropped
