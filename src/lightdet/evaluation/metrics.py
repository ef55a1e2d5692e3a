"""COCO-style mAP with torchmetrics (faster_coco_eval backend); predictions reach it cleaned by
:func:`lightdet.evaluation.predictions.finite_predictions`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

from lightdet.evaluation.coco import pr_curves as coco_pr_curves

# faster_coco_eval prints its whole summary table at INFO on every evaluation
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)

# torchmetrics result key -> logged name (``<stage>/<name>``)
SUMMARY_KEYS = {
    "map": "map",
    "map_50": "map_50",
    "map_75": "map_75",
    "map_small": "map_small",
    "map_medium": "map_medium",
    "map_large": "map_large",
    "mar_100": "mar_100",
}


def build_map_metric() -> MeanAveragePrecision:
    """COCO box mAP with per-class AP and the precision array (for PR curves).

    faster_coco_eval gives pycocotools' numbers, several times faster.
    """
    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        class_metrics=True,
        extended_summary=True,
        backend="faster_coco_eval",
        sync_on_compute=False,  # gather_list_states() syncs it: see there
    )
    metric.warn_on_many_detections = False  # COCO scoring keeps the top 100 per image by design
    return metric


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
    torchmetrics result (see :func:`lightdet.evaluation.coco.pr_curves`).

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
    """Flatten a torchmetrics result into ``stage/name`` scalars, per-class AP included.

    Size-range and per-class values that torchmetrics reports as -1 (no ground truth there) are
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
