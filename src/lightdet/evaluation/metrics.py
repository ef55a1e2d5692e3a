"""COCO box mAP for validation and test, exactly pycocotools' numbers (faster_coco_eval, the
same path as the evaluation report); predictions reach it cleaned by
:func:`lightdet.evaluation.predictions.finite_predictions`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric

from lightdet.evaluation.coco import (
    STAT_NAMES,
    coco_evaluate,
    detections_json,
    ground_truth_json,
)
from lightdet.evaluation.coco import pr_curves as coco_pr_curves

# faster_coco_eval prints its whole summary table at INFO on every evaluation
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)

# result key (MeanAveragePrecision's names) -> logged name (``<stage>/<name>``)
SUMMARY_KEYS = {
    "map": "map",
    "map_50": "map_50",
    "map_75": "map_75",
    "map_small": "map_small",
    "map_medium": "map_medium",
    "map_large": "map_large",
    "mar_100": "mar_100",
}


class CocoMeanAP(Metric):
    """COCO box mAP over the images it was given, with torchmetrics' ``MeanAveragePrecision``
    interface (``update(preds, targets)``, ``compute()``, its result keys) but scored by
    :func:`lightdet.evaluation.coco.coco_evaluate`: pycocotools' 12 numbers exactly, and about
    3 x faster than torchmetrics' own path, which was up to 1.2e-4 off pycocotools (its IoU
    thresholds come from a float32 ``linspace``); ``benchmarks/eval_speed.py`` measures both.

    ``compute()`` returns ``map``, ``map_50``, ``map_75``, ``map_small/medium/large``,
    ``mar_1/10/100``, ``mar_small/medium/large`` (-1 where undefined), ``map_per_class`` and
    ``mar_100_per_class`` for ``classes`` (the labels seen in predictions or ground truth), and
    COCO's ``precision`` array ``[T, R, K, A, M]``. Labels are used as COCO category ids.
    """

    full_state_update = False
    _STATES = (
        "detection_boxes",
        "detection_scores",
        "detection_labels",
        "groundtruth_boxes",
        "groundtruth_labels",
        "groundtruth_crowds",
    )

    def __init__(self) -> None:
        super().__init__(sync_on_compute=False)  # gather_list_states() syncs it: see there
        for name in self._STATES:
            self.add_state(name, default=[], dist_reduce_fx=None)

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        for pred, target in zip(preds, targets, strict=True):
            self.detection_boxes.append(pred["boxes"].detach().float().reshape(-1, 4))
            self.detection_scores.append(pred["scores"].detach().float().reshape(-1))
            self.detection_labels.append(pred["labels"].detach().long().reshape(-1))
            self.groundtruth_boxes.append(target["boxes"].detach().float().reshape(-1, 4))
            self.groundtruth_labels.append(target["labels"].detach().long().reshape(-1))
            crowd = target.get("iscrowd")
            crowd = torch.zeros_like(self.groundtruth_labels[-1]) if crowd is None else crowd
            self.groundtruth_crowds.append(crowd.detach().bool().reshape(-1))

    def compute(self) -> dict[str, Tensor]:
        labels = sorted(
            {
                int(v)
                for ls in (*self.detection_labels, *self.groundtruth_labels)
                for v in ls.tolist()
            }
        )
        n = len(self.groundtruth_boxes)
        images = [{"id": i + 1, "file_name": str(i + 1), "width": 0, "height": 0} for i in range(n)]
        targets = [
            {
                "boxes": b.cpu().numpy(),
                "category_ids": lab.cpu().numpy(),
                "iscrowd": c.cpu().numpy(),
            }
            for b, lab, c in zip(
                self.groundtruth_boxes, self.groundtruth_labels, self.groundtruth_crowds
            )
        ]
        preds = [
            {
                "boxes": b.cpu().numpy(),
                "scores": sc.cpu().numpy(),
                "category_ids": lab.cpu().numpy(),
            }
            for b, sc, lab in zip(
                self.detection_boxes, self.detection_scores, self.detection_labels
            )
        ]
        ground_truth = ground_truth_json(images, targets, {c: str(c) for c in labels})
        result = coco_evaluate(ground_truth, detections_json([i["id"] for i in images], preds))
        out = {
            name: torch.tensor(v, dtype=torch.float64)  # pycocotools' doubles, unrounded
            for name, v in zip(STAT_NAMES, result.stats)
        }
        rows = [result.per_class.get(c, {}) for c in labels]
        out["map_per_class"] = torch.tensor([r.get("AP", -1.0) for r in rows])
        out["mar_100_per_class"] = torch.tensor([r.get("AR100", -1.0) for r in rows])
        out["classes"] = torch.tensor(labels, dtype=torch.int32)
        out["precision"] = torch.as_tensor(result.precision, dtype=torch.float32)
        return out


def build_map_metric() -> CocoMeanAP:
    """COCO box mAP with per-class AP and the precision array (for PR curves)."""
    return CocoMeanAP()


def gather_list_states(metric) -> None:
    """Give every process all the images of a list-state metric (mAP), before ``compute()``.

    torchmetrics syncs list states element by element, so processes that saw different numbers
    of images (as with an unrepeated sampler, which avoids scoring padded duplicates) issue
    mismatched collectives and fail. Gathering each list as one Python object has no such
    constraint. Image order does not matter to mAP.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for name, value in metric.metric_state.items():
        if not isinstance(value, list):
            continue
        device = value[0].device if value else torch.device("cpu")
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, [t.cpu() for t in value])
        setattr(metric, name, [t.to(device) for part in parts for t in part])


def pr_curves(result: dict[str, Tensor]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-class precision-recall curves at IoU 0.5, all areas, 100 detections, of a
    :class:`CocoMeanAP` result (see :func:`lightdet.evaluation.coco.pr_curves`).

    Returns:
        ``{label: (recall [R], precision [R])}`` for classes with ground truth.
    """
    precision = result.get("precision")  # [T, R, K, A, M], -1 where undefined
    if precision is None:
        return {}
    return coco_pr_curves(precision.cpu().numpy(), result["classes"].reshape(-1).tolist())


def summarize(
    result: dict[str, Tensor], class_names: Sequence[str], stage: str
) -> dict[str, float]:
    """Flatten a :class:`CocoMeanAP` result into ``stage/name`` scalars, per-class AP included.

    Size-range and per-class values that COCO reports as -1 (no ground truth there) are
    left out rather than logged as a misleading -1.
    """
    out = {
        f"{stage}/{name}": float(result[key]) for key, name in SUMMARY_KEYS.items() if key in result
    }
    per_class = result.get("map_per_class")
    classes = result.get("classes")
    if per_class is not None and classes is not None and per_class.ndim == 1:
        for label, ap in zip(classes.tolist(), per_class.tolist()):
            if 1 <= label <= len(class_names):
                out[f"{stage}/ap_{class_names[label - 1]}"] = float(ap)
    core = {f"{stage}/{k}" for k in ("map", "map_50", "map_75")}  # always logged: monitors use them
    return {k: v for k, v in out.items() if v >= 0.0 or k in core}
