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

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from lightdet.evaluation.voc import box_iou


def difficult_ious(ground_truth: dict, detections: list[dict]) -> np.ndarray:
    """Per detection, the IoU with its best-overlapping ground-truth box of the same image
    and class when that box is difficult (``iscrowd``), else -1: the detection is set aside
    at every threshold up to that IoU."""
    boxes: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for ann in ground_truth["annotations"]:
        boxes[(ann["image_id"], ann["category_id"])].append(ann)
    out = np.full(len(detections), -1.0)
    by_key: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, det in enumerate(detections):
        by_key[(det["image_id"], det["category_id"])].append(i)
    for key, indices in by_key.items():
        anns = boxes.get(key, [])
        if not any(a.get("iscrowd") for a in anns):
            continue
        ious = box_iou(
            _xyxy([detections[i]["bbox"] for i in indices]),  # [D, 4]
            _xyxy([a["bbox"] for a in anns]),  # [G, 4]
        )  # [D, G]
        best = ious.argmax(axis=1)  # [D]: the devkit's jmax (first of equals)
        hard = np.asarray([bool(anns[j].get("iscrowd")) for j in best])
        out[np.asarray(indices)[hard]] = ious[np.arange(len(indices)), best][hard]
    return out


def _xyxy(xywh: list) -> np.ndarray:
    boxes = np.asarray(xywh, np.float64).reshape(-1, 4)  # [N, 4] COCO's x, y, w, h
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def per_threshold(
    ground_truth: dict,
    detections: list[dict],
    thresholds: np.ndarray,
    score: Callable[[dict, list[dict], float], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's ``[T, R, K, A, M]`` precision and ``[T, K, A, M]`` recall with difficult boxes
    ignored the devkit's way; ``score(gt, dets, t)`` runs the COCO evaluator at one threshold
    and returns its two arrays (their T axis of length 1)."""
    kept_gt = {
        **ground_truth,
        "annotations": [a for a in ground_truth["annotations"] if not a.get("iscrowd")],
    }
    best = difficult_ious(ground_truth, detections)
    precision, recall = [], []
    for t in thresholds:
        kept = [d for d, iou in zip(detections, best) if iou < t]
        p, r = score(kept_gt, kept, float(t))
        precision.append(p[0])
        recall.append(r[0])
    return np.stack(precision), np.stack(recall)
