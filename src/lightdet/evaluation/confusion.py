"""Detection confusion matrix at one IoU threshold, with a background row and column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lightdet.evaluation.voc import columns, key_pairs, pairwise_iou


def confusion_matrix(
    preds: Sequence[Mapping],
    targets: Sequence[Mapping],
    num_classes: int,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
) -> np.ndarray:
    """Counts ``[true class, predicted class]`` pairs over a split: int64 ``[K + 1, K + 1]``.

    Predictions scoring at least ``score_threshold`` are matched one to one, per image, to
    ground truth with IoU >= ``iou_threshold``, regardless of class, highest IoU first (equal
    IoUs: the earlier ground-truth box, then the earlier prediction). Index 0 is background:
    an unmatched ground-truth box counts in column 0 (missed), an unmatched prediction in row 0
    (false alarm). Ground truth marked ``iscrowd`` is ignored, and so are predictions matching
    it. IoU in float64.

    Args:
        preds: per image ``{"boxes": [N, 4] xyxy, "scores": [N], "labels": [N]}``.
        targets: per image ``{"boxes": [M, 4], "labels": [M], "iscrowd": [M]}`` (``iscrowd``
            optional).
        num_classes: K + 1 (background included).
    """
    targets = [
        t if "iscrowd" in t else {**t, "iscrowd": np.zeros(len(t["labels"]))} for t in targets
    ]
    dt, gt = columns(preds, "scores"), columns(targets, "iscrowd")
    return confusion_columns(dt, gt, num_classes, iou_threshold, score_threshold)


def confusion_columns(
    dt: Mapping, gt: Mapping, num_classes: int, iou_threshold: float, score_threshold: float
) -> np.ndarray:
    """:func:`confusion_matrix` over a split's columns (:func:`lightdet.evaluation.voc.columns`)."""
    kept = dt["scores"] >= score_threshold
    dt = {k: v[kept] for k, v in dt.items()}
    det, box, _ = key_pairs(dt["image"], gt["image"])  # same image, any class
    iou = pairwise_iou(dt["boxes"][det], gt["boxes"][box])  # [P]
    close = iou >= iou_threshold
    det, box, iou = det[close], box[close], iou[close]
    rank = np.empty(len(det), np.int64)
    rank[np.lexsort((det, box, -iou))] = np.arange(len(det))  # IoU down, then box, then det
    accepted = _greedy(det, box, rank, len(dt["labels"]), len(gt["labels"]))
    crowd = gt["iscrowd"].astype(bool)
    counted = accepted[~crowd[box[accepted]]]
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (gt["labels"][box[counted]], dt["labels"][det[counted]]), 1)
    found = np.zeros(len(gt["labels"]), bool)
    found[box[accepted]] = True
    used = np.zeros(len(dt["labels"]), bool)
    used[det[accepted]] = True
    np.add.at(matrix, (gt["labels"][~found & ~crowd], 0), 1)  # missed: background
    np.add.at(matrix, (0, dt["labels"][~used]), 1)  # false alarm: true background
    return matrix


def _greedy(det: np.ndarray, box: np.ndarray, rank: np.ndarray, n_det: int, n_box: int):
    """The pairs (indices) a greedy one-to-one matching in ``rank`` order accepts.

    Greedy accepts a pair when no earlier pair took its detection or its box. So does this,
    in rounds: a pair that ranks first among the remaining pairs of its detection and of its
    box is accepted (every earlier pair touching either is gone), the pairs touching what it
    took are dropped; the first remaining pair always qualifies, so each round accepts one
    at least, and images (no shared indices) proceed side by side.
    """
    alive = np.ones(len(rank), bool)
    accepted = []
    while alive.any():
        live = np.nonzero(alive)[0]
        first_det = np.full(n_det, len(rank))
        np.minimum.at(first_det, det[live], rank[live])
        first_box = np.full(n_box, len(rank))
        np.minimum.at(first_box, box[live], rank[live])
        take = live[(first_det[det[live]] == rank[live]) & (first_box[box[live]] == rank[live])]
        accepted.append(take)
        taken_det = np.zeros(n_det, bool)
        taken_det[det[take]] = True
        taken_box = np.zeros(n_box, bool)
        taken_box[box[take]] = True
        alive &= ~taken_det[det] & ~taken_box[box]
    return np.concatenate(accepted) if accepted else np.zeros(0, np.int64)
