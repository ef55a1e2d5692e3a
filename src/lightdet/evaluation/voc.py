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

    The devkit walks each class's detections in descending score (ties: in input order) and
    lets each take the box it overlaps most; only the first to take a box is a true positive.
    Which box a detection overlaps most does not depend on the walk, so this computes it for
    every detection at once and keeps, per box, the first detection in score order.

    Args:
        preds: per image ``{"boxes": [N, 4] xyxy, "scores": [N], "labels": [N]}``.
        targets: per image ``{"boxes": [M, 4], "labels": [M], "iscrowd": [M]}`` (``iscrowd``
            holds VOC's ``difficult``).
        labels: the classes to match (1..K).
    """
    dt, gt = columns(preds, "scores"), columns(targets, "iscrowd")
    return match_columns(dt, gt, labels, iou_threshold)


def match_columns(
    dt: Mapping, gt: Mapping, labels: Sequence[int], iou_threshold: float = 0.5
) -> dict[int, ClassMatches]:
    """:func:`match_detections` over a split's columns (see :func:`columns`)."""
    order, tp, _ = walk(dt, gt, iou_threshold)
    difficult = gt["iscrowd"].astype(bool)
    det_labels = dt["labels"][order]
    by_label = np.argsort(det_labels, kind="stable")  # each class's run keeps the walk's order
    sorted_labels = det_labels[by_label]
    gt_labels = gt["labels"][~difficult]
    out = {}
    for c in labels:
        lo, hi = np.searchsorted(sorted_labels, [int(c), int(c) + 1])
        mine = order[by_label[lo:hi]]
        out[int(c)] = ClassMatches(
            dt["scores"][mine], tp[by_label[lo:hi]], int(np.count_nonzero(gt_labels == int(c)))
        )
    return out


def walk(dt: Mapping, gt: Mapping, iou_threshold: float = 0.5) -> tuple[np.ndarray, ...]:
    """The devkit's walk over a split's columns: ``order`` [D'] (the detections counted,
    score-descending, ties in input order; those on a difficult box left out), ``tp`` [D']
    and ``taken`` [D'] (the box each true positive took, -1 for a false positive)."""
    best, best_iou = best_overlaps(dt, gt)  # [D]: the box each detection overlaps most
    hit = (best >= 0) & (best_iou > iou_threshold)  # the devkit's strict ">"
    difficult = gt["iscrowd"].astype(bool)
    ignored = hit & difficult[np.maximum(best, 0)]  # on a difficult box: neither
    order = np.argsort(-dt["scores"], kind="stable")  # [D]: the walk
    order = order[~ignored[order]]
    taken = np.where(hit[order], best[order], -1)  # [D']: the box each takes, -1 none
    tp = np.zeros(len(order), bool)
    boxes, first = np.unique(taken, return_index=True)  # the first to take each box
    tp[first[boxes >= 0]] = True
    return order, tp, np.where(tp, taken, -1)


def columns(rows: Sequence[Mapping], extra: str) -> dict[str, np.ndarray]:
    """Per-image arrays as columns over the split: ``image`` (position), ``labels``, ``boxes``
    float64 ``[N, 4]`` and ``extra`` (scores or difficult flags)."""
    labels = [np.asarray(r["labels"]).reshape(-1) for r in rows]
    counts = [len(x) for x in labels]
    cat = lambda xs, dtype: np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)  # noqa: E731
    return {
        "image": np.repeat(np.arange(len(rows)), counts),
        "labels": cat(labels, np.int64),
        "boxes": cat([_np_boxes(r["boxes"]) for r in rows], np.float64).reshape(-1, 4),
        extra: cat([np.asarray(r[extra]).reshape(-1) for r in rows], np.float64),
    }


def best_overlaps(dt: Mapping, gt: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the ground-truth box of its image and label it overlaps most (the
    first of equals, in input order) and that IoU; -1 and 0 where there is none.

    ``dt``/``gt``: columns with ``image``, ``labels`` and ``boxes`` (xyxy).
    """
    span = int(max(dt["labels"].max(initial=0), gt["labels"].max(initial=0))) + 1
    dt_key = dt["image"].astype(np.int64) * span + dt["labels"]
    det, box, counts = key_pairs(dt_key, gt["image"].astype(np.int64) * span + gt["labels"])
    starts = np.cumsum(counts) - counts
    iou = pairwise_iou(dt["boxes"][det], gt["boxes"][box])  # [P]
    best = np.full(len(dt_key), -1)
    best_iou = np.zeros(len(dt_key))
    if len(det):
        top = np.maximum.reduceat(iou, starts[counts > 0])  # [D with boxes]
        best_iou[counts > 0] = top
        is_top = iou == best_iou[det]
        first = np.unique(det[is_top], return_index=True)[1]
        best[det[is_top][first]] = box[is_top][first]
    return best, best_iou


def key_pairs(dt_key: np.ndarray, gt_key: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every (detection, ground-truth box) pair with equal keys: ``det`` [P] and ``box`` [P]
    indices, grouped by detection (in order) and, within one, boxes in input order; and the
    number of pairs of each detection, ``counts`` [D]."""
    by_key = np.argsort(gt_key, kind="stable")  # same key: input order
    lo = np.searchsorted(gt_key[by_key], dt_key, "left")
    counts = np.searchsorted(gt_key[by_key], dt_key, "right") - lo  # [D]
    det = np.repeat(np.arange(len(dt_key)), counts)  # [P]
    starts = np.cumsum(counts) - counts
    box = by_key[np.repeat(lo, counts) + np.arange(len(det)) - np.repeat(starts, counts)]
    return det, box, counts


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box of ``a`` [P, 4] with the box of ``b`` [P, 4] in the same row: [P],
    computed as :func:`box_iou` computes each cell."""
    lt = np.maximum(a[:, :2], b[:, :2])  # [P, 2]
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - lt, 0, None)  # [P, 2]
    inter = wh[:, 0] * wh[:, 1]  # [P]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # [P]
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # [P]
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


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
