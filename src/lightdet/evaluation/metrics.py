"""The scalars logged for an evaluation pass (``stage/name``), read off the pass's report.

COCO box mAP is pycocotools' numbers exactly (scored by hotcoco in
:func:`lightdet.evaluation.coco.coco_evaluate`, the same path as ``make eval``'s report);
predictions reach it cleaned by :func:`lightdet.evaluation.predictions.finite_predictions`.
"""

from __future__ import annotations

from lightdet.data.classes import class_name
from lightdet.evaluation.report import EvaluationReport

# logged as ``<stage>/<name>``: COCO's summary numbers
SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
_CORE = ("map", "map_50", "map_75")  # always logged: monitors and searches use them


def scalars(report: EvaluationReport, stage: str) -> dict[str, float]:
    """COCO's summary numbers and per-class AP (``<stage>/ap_<class>``) as scalars.

    Values COCO reports as -1 (no ground truth in that size range or class) are left out
    rather than logged as a misleading -1, except the core three.
    """
    stats = report.stats
    out = {f"{stage}/{name}": float(stats[name]) for name in SUMMARY_KEYS}
    for label in report.category_ids:
        ap = report.class_coco(label).get("AP", -1.0)
        out[f"{stage}/ap_{class_name(report.class_names, label)}"] = float(ap)
    core = {f"{stage}/{k}" for k in _CORE}
    return {k: v for k, v in out.items() if v >= 0.0 or k in core}
