"""COCO's 12 numbers and a per-class table for an evaluated split, from COCO-format files.

The ground truth and the detections are built as COCO's own formats (``ground_truth.json`` and
``detections.json`` in an evaluation folder), and scored from exactly those dicts with
faster_coco_eval, which gives pycocotools' numbers (tested to 1e-6). Boxes are areas of boxes,
as the training-time ``val/map`` (torchmetrics) computes them, so the two agree.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

# pycocotools' summary lines: (AP or AR, IoU range, area, max detections), in ``stats`` order
STAT_LINES = [
    ("AP", "0.50:0.95", "all", 100),
    ("AP", "0.50", "all", 100),
    ("AP", "0.75", "all", 100),
    ("AP", "0.50:0.95", "small", 100),
    ("AP", "0.50:0.95", "medium", 100),
    ("AP", "0.50:0.95", "large", 100),
    ("AR", "0.50:0.95", "all", 1),
    ("AR", "0.50:0.95", "all", 10),
    ("AR", "0.50:0.95", "all", 100),
    ("AR", "0.50:0.95", "small", 100),
    ("AR", "0.50:0.95", "medium", 100),
    ("AR", "0.50:0.95", "large", 100),
]
# ``stats`` index -> the metric name lightdet logs (``val/<name>``)
STAT_NAMES = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]
PER_CLASS_COLUMNS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"]


@dataclass
class CocoResult:
    """COCO evaluation of one split.

    Attributes:
        stats: the 12 numbers, in pycocotools' order (-1 where undefined).
        per_class: ``{category id: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"}}``
            (-1 where the class has no ground truth in that range).
        precision: COCO's ``[T, R, K, A, M]`` precision array (-1 where undefined).
        category_ids: the K category ids, in the order of the precision array's K axis.
    """

    stats: list[float]
    per_class: dict[int, dict[str, float]]
    precision: np.ndarray
    category_ids: list[int]

    def pr_curves(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{category id: (recall [R], precision [R])}`` at IoU 0.5, all areas, 100
        detections, for the classes with ground truth."""
        return pr_curves(self.precision, self.category_ids)


def pr_curves(precision: np.ndarray, category_ids: Sequence[int]) -> dict:
    """Per-class precision at COCO's 101 recall points, IoU 0.5, all areas, most detections,
    from a ``[T, R, K, A, M]`` precision array (-1 where undefined)."""
    if precision is None or precision.ndim != 5:
        return {}
    recall = np.linspace(0, 1, precision.shape[1])
    curves = {}
    for k, cat in enumerate(category_ids):
        p = precision[0, :, k, 0, -1]  # [R]
        if (p >= 0).any():
            curves[int(cat)] = (recall, p.clip(min=0))
    return curves


def ground_truth_json(
    images: Sequence[Mapping], targets: Sequence[Mapping], categories: Mapping[int, str]
) -> dict:
    """A COCO ground-truth dict.

    Args:
        images: per image ``{"id", "file_name", "width", "height"}``.
        targets: per image ``{"boxes": [N, 4] xyxy, "category_ids": [N], "iscrowd": [N]}``
            (lists or arrays; VOC ``difficult`` is ``iscrowd``: ignored, as in evaluation).
        categories: category id -> name, every class of the model.
    """
    annotations = []
    for image, target in zip(images, targets):
        xywh = _boxes(target["boxes"])
        areas = (xywh[:, 2] * xywh[:, 3]).tolist()  # in float32, as torchmetrics computes it
        for box, area, cat, crowd in zip(
            xywh.tolist(), areas, np.asarray(target["category_ids"]), np.asarray(target["iscrowd"])
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(image["id"]),
                    "category_id": int(cat),
                    "bbox": box,
                    "area": area,
                    "iscrowd": int(bool(crowd)),
                }
            )
    return {
        "info": {"description": "lightdet evaluation ground truth (box areas)"},
        "images": [dict(i) for i in images],
        "annotations": annotations,
        "categories": [{"id": int(c), "name": str(n)} for c, n in categories.items()],
    }


def detections_json(image_ids: Sequence[int], preds: Sequence[Mapping]) -> list[dict]:
    """COCO results: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``.

    Args:
        image_ids: per image, its id.
        preds: per image ``{"boxes": [N, 4] xyxy, "scores": [N], "category_ids": [N]}``.
    """
    out = []
    for image_id, pred in zip(image_ids, preds):
        scores = np.asarray(pred["scores"], np.float64).tolist()
        cats = np.asarray(pred["category_ids"]).tolist()
        for box, cat, score in zip(_boxes(pred["boxes"]).tolist(), cats, scores):
            out.append(
                {"image_id": int(image_id), "category_id": int(cat), "bbox": box, "score": score}
            )
    return out


def _boxes(boxes) -> np.ndarray:
    """xywh in float32, the detectors' precision: the numbers training's ``val/map`` scores
    (torchmetrics converts the same way), so the two agree exactly."""
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)  # [N, 4]
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # [N, 4] xywh


def coco_evaluate(
    ground_truth: dict, detections: list[dict], *, difficult: bool = False
) -> CocoResult:
    """Score COCO-format detections against a COCO ground-truth dict (neither is modified).

    ``difficult``: the ground truth's ``iscrowd`` boxes are VOC's difficult ones, ignored the
    devkit's way (:mod:`lightdet.evaluation.difficult`), not as COCO's crowd regions.
    """
    if difficult and any(a.get("iscrowd") for a in ground_truth["annotations"]):
        from lightdet.evaluation.difficult import per_threshold

        runs = []

        def score(gt: dict, dets: list[dict], t: float) -> tuple[np.ndarray, np.ndarray]:
            runs.append(_run(gt, dets, [t]))
            return np.asarray(runs[-1].eval["precision"]), np.asarray(runs[-1].eval["recall"])

        thresholds = _run(ground_truth, [], None, evaluate=False).params.iouThrs
        precision, recall = per_threshold(ground_truth, detections, thresholds, score)
        evaluator = runs[0]  # COCO's own summary, over the arrays of every threshold
        evaluator.params.iouThrs = thresholds
        evaluator.eval["precision"], evaluator.eval["recall"] = precision, recall
    else:
        evaluator = _run(ground_truth, detections, None)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.summarize()
    precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
    recall = np.asarray(evaluator.eval["recall"])  # [T, K, A, M]
    cats = [int(c) for c in evaluator.params.catIds]
    per_class = {cat: _class_row(precision, recall, k) for k, cat in enumerate(cats)}
    return CocoResult([float(s) for s in evaluator.stats[:12]], per_class, precision, cats)


def _run(
    ground_truth: dict, detections: list[dict], thresholds: list | None, evaluate: bool = True
) -> COCOeval_faster:
    """The evaluator, evaluated and accumulated (at ``thresholds``: COCO's ten when None)."""
    # the loaders add keys to the annotation dicts they are given: copies of those dicts
    gt_copy = {
        **ground_truth,
        "images": [dict(i) for i in ground_truth["images"]],
        "annotations": [dict(a) for a in ground_truth["annotations"]],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # the loaders print their progress
        gt = COCO(gt_copy)
        dt = gt.loadRes([dict(d) for d in detections]) if detections else COCO()
        evaluator = COCOeval_faster(gt, dt, iouType="bbox")
        if thresholds is not None:
            evaluator.params.iouThrs = np.asarray(thresholds, np.float64)
        if evaluate:
            evaluator.evaluate()
            evaluator.accumulate()
    return evaluator


def _class_row(precision: np.ndarray, recall: np.ndarray, k: int) -> dict[str, float]:
    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    ap = {
        "AP": mean(precision[:, :, k, 0, -1]),
        "AP50": mean(precision[0, :, k, 0, -1]),
        "AP75": mean(precision[5, :, k, 0, -1]),
    }
    for a, name in ((1, "APs"), (2, "APm"), (3, "APl")):
        ap[name] = mean(precision[:, :, k, a, -1])
    ap["AR100"] = mean(recall[:, k, 0, -1])
    return ap


def format_stats(stats: Sequence[float]) -> str:
    """The 12 numbers laid out as pycocotools' ``COCOeval.summarize()`` prints them."""
    lines = []
    for (kind, iou, area, dets), value in zip(STAT_LINES, stats):
        title = "Average Precision" if kind == "AP" else "Average Recall"
        lines.append(
            f" {title:<18} ({kind}) @[ IoU={iou:<9} | area={area:>6s} | "
            f"maxDets={dets:>3d} ] = {value:0.3f}"
        )
    return "\n".join(lines)


def finite_or_none(value: float) -> float | None:
    """-1 (COCO's 'undefined') and NaN as None, for JSON and tables."""
    return None if value is None or value < 0 or math.isnan(value) else float(value)
