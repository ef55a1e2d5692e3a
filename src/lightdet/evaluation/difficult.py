"""VOC ``difficult`` boxes in COCO's numbers, ignored the way the VOC devkit ignores them.

COCO ignores crowd regions by the intersection over the *detection's* area: every detection
inside a large crowd box disappears, wherever it lies. The VOC devkit ignores a detection only
when the ground-truth box it overlaps most (by IoU, over the image's boxes of its class) is
difficult and that IoU passes the threshold; difficult boxes are never counted as objects to
find. So, at each of COCO's IoU thresholds ``t``:

- the detections whose best-IoU box is difficult with IoU >= ``t`` are set aside (the devkit
  says "neither true nor false"; ``>=`` as COCO's own matching at ``t``), and so is every
  difficult box;
- what remains is scored by the COCO evaluator at ``t`` alone (greedy matching by score, area
  ranges, the max-detections cut), and its precision and recall arrays become row ``t`` of the
  arrays COCO's own summary then reads.

Without difficult boxes this gives COCO's numbers exactly (tested). Unlike the devkit, a
detection set aside here leaves its place in the max-detections cut to the next one.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from lightdet.evaluation.split import CocoSplit, xyxy
from lightdet.evaluation.voc import box_iou


def difficult_ious(split: CocoSplit) -> np.ndarray:
    """Per detection, the IoU with its best-overlapping ground-truth box of the same image
    and class when that box is difficult (``iscrowd``), else -1: the detection is set aside
    at every threshold up to that IoU."""
    boxes: dict[tuple[int, int], list[int]] = defaultdict(list)
    for g, key in enumerate(zip(split.gt_image_ids.tolist(), split.gt_category_ids.tolist())):
        boxes[key].append(g)
    out = np.full(len(split.scores), -1.0)
    by_key: dict[tuple[int, int], list[int]] = defaultdict(list)
    for d, key in enumerate(zip(split.dt_image_ids.tolist(), split.dt_category_ids.tolist())):
        by_key[key].append(d)
    for key, indices in by_key.items():
        gts = np.asarray(boxes.get(key, []), np.int64)
        if not split.iscrowd[gts].any():
            continue
        dets = np.asarray(indices)
        ious = box_iou(xyxy(split.dt_boxes[dets]), xyxy(split.gt_boxes[gts]))  # [D, G]
        best = ious.argmax(axis=1)  # [D]: the devkit's jmax (first of equals)
        hard = split.iscrowd[gts[best]]  # [D]
        out[dets[hard]] = ious[np.arange(len(dets)), best][hard]
    return out


def per_threshold(
    split: CocoSplit,
    thresholds: np.ndarray,
    score: Callable[[CocoSplit, float], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's ``[T, R, K, A, M]`` precision and ``[T, K, A, M]`` recall with difficult boxes
    ignored the devkit's way; ``score(split, t)`` runs the COCO evaluator at one threshold
    and returns its two arrays (their T axis of length 1)."""
    best = difficult_ious(split)
    plain = ~split.iscrowd
    precision, recall = [], []
    for t in thresholds:
        kept = best < t
        subset = dataclasses.replace(
            split,
            gt_image_ids=split.gt_image_ids[plain],
            gt_category_ids=split.gt_category_ids[plain],
            gt_boxes=split.gt_boxes[plain],
            gt_areas=split.gt_areas[plain],
            iscrowd=split.iscrowd[plain],
            dt_image_ids=split.dt_image_ids[kept],
            dt_category_ids=split.dt_category_ids[kept],
            dt_boxes=split.dt_boxes[kept],
            scores=split.scores[kept],
        )
        p, r = score(subset, float(t))
        precision.append(p[0])
        recall.append(r[0])
    return np.stack(precision), np.stack(recall)
