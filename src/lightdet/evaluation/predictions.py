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
        clean.append(
            {
                "boxes": p["boxes"][keep].float(),
                "scores": p["scores"][keep].float(),
                "labels": p["labels"][keep],
            }
        )
    return clean, dropped


def predict_by_size(net, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """``net(images)`` in eval mode, one forward per image size, outputs in input order.

    A torchvision detector pads a batch to its largest image, and the padding changes the
    detections of the smaller ones (GroupNorm statistics over the padded area, features at the
    borders): the same checkpoint scored val map 0.281 at batch 4 and 0.304 at batch 1 on a
    real dataset of mixed sizes. Images of one size are padded alike alone or together, so
    results do not depend on which images share a batch (a batch of one size is one forward,
    as before).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape[-2:]), []).append(i)
    if len(groups) <= 1:
        return net(list(images))
    outputs: list = [None] * len(images)
    for indices in groups.values():
        for i, out in zip(indices, net([images[i] for i in indices])):
            outputs[i] = out
    return outputs
