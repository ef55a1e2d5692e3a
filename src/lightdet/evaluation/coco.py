"""COCO's 12 numbers and a per-class table for an evaluated split.

A split is held as COCO's columns (:class:`CocoSplit`: image and category ids, xywh boxes,
areas, crowd flags, scores), not a dict per box: 5,000 images' 500,000 detections are a few
arrays. They are scored by hotcoco (``COCO.from_arrays`` and ``load_res`` of an ``[N, 7]``
array), which gives pycocotools' numbers and precision/recall arrays exactly
(``tests/unit/evaluation/test_coco_parity.py``; speed and exactness of the candidates in
``benchmarks/results/coco_backends.md``). The JSON files of a report (``ground_truth.json``,
``detections.json``) are built from the same columns when written. Boxes are areas of boxes, as
the training-time numbers have always been computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from hotcoco import COCO, COCOeval

from lightdet.evaluation.split import CocoSplit

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
    """A COCO ground-truth dict from per-image arrays (see :meth:`CocoSplit.of`)."""
    return CocoSplit.of(images, targets, [], categories).ground_truth_json()


def detections_json(image_ids: Sequence[int], preds: Sequence[Mapping]) -> list[dict]:
    """COCO results from per-image ``{"boxes": [N, 4] xyxy, "scores", "category_ids"}``."""
    images = [{"id": int(i)} for i in image_ids]
    return CocoSplit.of(images, [], preds, {}).detections_json()


def coco_evaluate(
    ground_truth: Mapping | CocoSplit,
    detections: Sequence[Mapping] = (),
    *,
    difficult: bool = False,
) -> CocoResult:
    """Score a split: a :class:`CocoSplit`, or a COCO ground-truth dict and COCO results
    (neither is modified).

    ``difficult``: the ground truth's ``iscrowd`` boxes are VOC's difficult ones, ignored the
    devkit's way (:mod:`lightdet.evaluation.difficult`), not as COCO's crowd regions.
    """
    split = (
        ground_truth
        if isinstance(ground_truth, CocoSplit)
        else CocoSplit.from_json(ground_truth, detections)
    )
    if difficult and split.iscrowd.any():
        from lightdet.evaluation.difficult import per_threshold

        def score(gt: CocoSplit, t: float) -> tuple[np.ndarray, np.ndarray]:
            run = _run(gt, [t])
            return np.asarray(run.eval["precision"]), np.asarray(run.eval["recall"])

        precision, recall = per_threshold(split, IOU_THRESHOLDS, score)
        cats = sorted(split.categories)
    else:
        evaluator = _run(split, None)
        evaluated = evaluator.eval
        precision = np.asarray(evaluated["precision"])  # [T, R, K, A, M]
        recall = np.asarray(evaluated["recall"])  # [T, K, A, M]
        cats = [int(c) for c in evaluator.params.cat_ids]
    per_class = {cat: _class_row(precision, recall, k) for k, cat in enumerate(cats)}
    return CocoResult(summarize(precision, recall), per_class, precision, cats)


# COCO's IoU thresholds, as pycocotools computes them (0.5, 0.55, ..., 0.95)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _run(split: CocoSplit, thresholds: list | None):
    """hotcoco's evaluator over ``split``, evaluated and accumulated (at ``thresholds``:
    COCO's ten when None)."""
    images = [
        {"id": int(i["id"]), "width": i.get("width", 0), "height": i.get("height", 0)}
        for i in split.images
    ]
    categories = [{"id": c, "name": n} for c, n in split.categories.items()]
    gt = COCO.from_arrays(
        images,
        categories,
        split.gt_image_ids,
        split.gt_category_ids,
        split.gt_boxes,
        area=split.gt_areas,
        iscrowd=split.iscrowd.astype(np.int64),
    )
    evaluator = COCOeval(gt, gt.load_res(split.detection_array()), "bbox")
    if thresholds is not None:
        evaluator.params.iou_thrs = [float(t) for t in thresholds]
    evaluator.evaluate()
    evaluator.accumulate()
    return evaluator


def _defined_mean(values: np.ndarray) -> float:
    """The mean of the defined (> -1) values, -1 when none: pycocotools' ``summarize`` mean."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray) -> list[float]:
    """COCO's 12 numbers from its ``[T, R, K, A, M]`` precision and ``[T, K, A, M]`` recall
    arrays (COCO's thresholds, areas all/small/medium/large, max detections 1/10/100), the
    means pycocotools' ``summarize`` takes: over the defined (> -1) values, -1 when none."""

    mean = _defined_mean
    at_50, at_75 = 0, 5  # IoU 0.5 and 0.75 on COCO's ten thresholds
    stats = [
        mean(precision[:, :, :, 0, 2]),
        mean(precision[at_50, :, :, 0, 2]),
        mean(precision[at_75, :, :, 0, 2]),
    ]
    stats += [mean(precision[:, :, :, a, 2]) for a in (1, 2, 3)]
    stats += [mean(recall[:, :, 0, m]) for m in (0, 1, 2)]
    stats += [mean(recall[:, :, a, 2]) for a in (1, 2, 3)]
    return stats


def _class_row(precision: np.ndarray, recall: np.ndarray, k: int) -> dict[str, float]:
    mean = _defined_mean
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


def text_table(rows: Sequence[Sequence]) -> list[str]:
    """Rows as aligned console lines: the first column left-aligned, the others right; floats
    with three decimals, None as "-"."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(cells[0]))]
    return [
        "  ".join(v.rjust(w) if c else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths)))
        for r in cells
    ]


def cell(value) -> str:
    """One table cell as text: three decimals for a float, "-" for None."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def finite_or_none(value: float) -> float | None:
    """-1 (COCO's 'undefined') and NaN as None, for JSON and tables."""
    return None if value is None or value < 0 or math.isnan(value) else float(value)
