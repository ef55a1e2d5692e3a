"""Pascal VOC AP (VOC2007 11-point and VOC2010+ area) and the F1-optimal score threshold.

Both come from one matching of detections to ground truth at IoU 0.5, done as the VOC devkit
does (``VOCevaldet``): per class, detections in descending score over the whole split; each
takes the ground-truth box of its image it overlaps most; IoU above the threshold and that box
not taken yet: a true positive; taken already, or IoU too low: a false positive; the box is
``difficult``: ignored (neither). ``difficult`` boxes do not count as positives.

Boxes are in lightdet's continuous pixel coordinates: the VOC reader turns the devkit's
inclusive 1-based corners into ``[xmin - 1, ymin - 1, xmax, ymax]``, so plain IoU here equals
the devkit's IoU with its ``+ 1`` widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class ClassMatches:
    """The outcome of every counted detection of one class.

    Attributes:
        scores: float64 ``[N]``, descending.
        tp: bool ``[N]``: a true positive (else a false positive).
        positives: ground-truth boxes of the class, ``difficult`` ones excluded.
    """

    scores: np.ndarray
    tp: np.ndarray
    positives: int


def match_detections(
    preds: Sequence[Mapping],
    targets: Sequence[Mapping],
    labels: Sequence[int],
    iou_threshold: float = 0.5,
) -> dict[int, ClassMatches]:
    """Match each class's detections over all images, as the VOC devkit does.

    Args:
        preds: per image ``{"boxes": [N, 4] xyxy, "scores": [N], "labels": [N]}``.
        targets: per image ``{"boxes": [M, 4], "labels": [M], "iscrowd": [M]}`` (``iscrowd``
            holds VOC's ``difficult``).
        labels: the classes to match (1..K).
    """
    images = [_Image.of(pred, target) for pred, target in zip(preds, targets)]
    return {int(c): _match_class(images, int(c), iou_threshold) for c in labels}


@dataclass
class _Image:
    """One image's detections and ground truth as arrays, with their IoU matrix computed once
    for every class (elementwise: a class's slice holds the very values it would alone)."""

    pred_labels: np.ndarray  # [N]
    scores: np.ndarray  # [N]
    labels: np.ndarray  # [M]
    difficult: np.ndarray  # [M]
    iou: np.ndarray  # [N, M]

    @classmethod
    def of(cls, pred: Mapping, target: Mapping) -> _Image:
        pred_labels = np.asarray(pred["labels"]).reshape(-1)
        labels = np.asarray(target["labels"]).reshape(-1)
        return cls(
            pred_labels,
            np.asarray(pred["scores"], float).reshape(-1),
            labels,
            np.asarray(target["iscrowd"], bool).reshape(-1),
            box_iou(_np_boxes(pred["boxes"]), _np_boxes(target["boxes"])),
        )


def _match_class(images: Sequence[_Image], label: int, iou_threshold: float) -> ClassMatches:
    dets = []  # (score, image, row of that image's IoU matrix)
    difficult, ious = [], []
    positives = 0
    for i, image in enumerate(images):
        mine = image.labels == label
        difficult.append(image.difficult[mine])
        positives += int((~difficult[-1]).sum())
        keep = image.pred_labels == label
        ious.append(image.iou[np.ix_(keep, mine)])
        dets += [(float(s), i, r) for r, s in enumerate(image.scores[keep])]
    order = sorted(range(len(dets)), key=lambda d: -dets[d][0])  # stable: ties keep input order
    taken = [np.zeros(len(d), bool) for d in difficult]
    scores, tp = [], []
    for d in order:
        score, image, row = dets[d]
        overlaps = ious[image][row]  # [M]: IoU with each ground-truth box of the class
        hit = int(np.argmax(overlaps)) if len(overlaps) else None
        if hit is not None and overlaps[hit] <= iou_threshold:  # the devkit's strict ">"
            hit = None
        if hit is not None and difficult[image][hit]:
            continue  # a difficult box: neither true nor false positive
        scores.append(score)
        tp.append(hit is not None and not taken[image][hit])
        if tp[-1]:
            taken[image][hit] = True
    return ClassMatches(np.asarray(scores, float), np.asarray(tp, bool), positives)


def _np_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4]: [N, M] (0 where the
    union is empty)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)  # [N, M]
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)  # [N]
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)  # [M]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def precision_recall(matches: ClassMatches) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative ``(recall [N], precision [N])`` down the score-sorted detections."""
    tp = np.cumsum(matches.tp)
    fp = np.cumsum(~matches.tp)
    recall = tp / max(matches.positives, 1)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision


def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool = False) -> float:
    """Area under the PR curve as the devkit computes it.

    ``eleven_point`` (VOC2007): the mean of the best precision at recall >= 0, 0.1, ..., 1.
    Otherwise (VOC2010+): the area under the curve made monotonically decreasing.
    """
    if eleven_point:
        points = [
            precision[recall >= t].max() if (recall >= t).any() else 0.0
            for t in np.linspace(0, 1, 11)
        ]
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def voc_results(matches: Mapping[int, ClassMatches]) -> dict:
    """``{"per_class": {label: {"ap", "ap_07", "positives"}}, "map", "map_07"}``; a class
    without positives has AP None and is left out of the means."""
    per_class, aps, aps07 = {}, [], []
    for label, m in matches.items():
        if m.positives == 0:
            per_class[label] = {"ap": None, "ap_07": None, "positives": 0}
            continue
        recall, precision = precision_recall(m)
        ap, ap07 = voc_ap(recall, precision), voc_ap(recall, precision, eleven_point=True)
        per_class[label] = {"ap": ap, "ap_07": ap07, "positives": m.positives}
        aps.append(ap)
        aps07.append(ap07)
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    return {"per_class": per_class, "map": mean(aps), "map_07": mean(aps07)}


def pooled(matches: Sequence[ClassMatches]) -> ClassMatches:
    """All classes' detections as one list, score-sorted: the overall operating point."""
    scores = np.concatenate([m.scores for m in matches] or [np.zeros(0)])
    tp = np.concatenate([m.tp for m in matches] or [np.zeros(0, bool)])
    order = np.argsort(-scores, kind="stable")
    return ClassMatches(scores[order], tp[order], sum(m.positives for m in matches))


def best_f1(matches: ClassMatches) -> dict:
    """The score threshold that maximises F1, with precision and recall there.

    Keeping the detections scoring at least ``threshold`` gives exactly these figures (every
    candidate threshold keeps all detections tied at its score). Without any detection or
    positive: threshold None, F1 0.
    """
    n = len(matches.scores)
    if n == 0 or matches.positives == 0:
        return {"threshold": None, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    recall, precision = precision_recall(matches)
    last_of_tie = np.append(matches.scores[1:] != matches.scores[:-1], True)  # [N]
    f1 = np.where(last_of_tie, _f1(precision, recall), -1.0)
    i = int(np.argmax(f1))
    return {
        "threshold": float(matches.scores[i]),
        "f1": float(f1[i]),
        "precision": float(precision[i]),
        "recall": float(recall[i]),
    }


def f1_curve(matches: ClassMatches, thresholds: np.ndarray) -> np.ndarray:
    """F1 when keeping detections scoring at least each of ``thresholds`` (for plots)."""
    if matches.positives == 0 or not len(matches.scores):
        return np.zeros(len(thresholds))
    recall, precision = precision_recall(matches)
    kept = np.searchsorted(-matches.scores, -np.asarray(thresholds), side="right")  # [T]
    i = np.clip(kept - 1, 0, None)
    return np.where(kept > 0, _f1(precision[i], recall[i]), 0.0)


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
