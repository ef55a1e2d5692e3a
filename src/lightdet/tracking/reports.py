"""What a detection engineer looks at in ClearML besides scalars: tables, curves, matrices, images.

Plain functions over a ``clearml.Logger``; the callbacks decide when to call them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from lightdet.data.classes import class_name, with_background
from lightdet.data.records import DetectionRecord
from lightdet.evaluation.report import EvaluationReport
from lightdet.viz import draw_boxes, draw_targets, grid


def report_ap_table(logger, report: EvaluationReport, it: int) -> None:
    """Per-class AP@[.5:.95] and AR@100 as a table, with the overall values last."""
    rows = [["class", "AP", "AR@100"]]
    for label in report.category_ids:
        row = report.class_coco(label)
        name = class_name(report.class_names, label)
        rows.append([name, _fmt(row.get("AP", -1.0)), _fmt(row.get("AR100", -1.0))])
    stats = report.stats
    rows.append(["all", _fmt(stats["map"]), _fmt(stats["mar_100"])])
    logger.report_table(f"{report.split} per-class AP", "AP", iteration=it, table_plot=rows)


def _fmt(value: float) -> str:
    return "n/a" if value < 0 or value != value else f"{value:.4f}"  # -1: no ground truth


def report_pr_curves(logger, report: EvaluationReport, it: int) -> None:
    """One precision-recall curve per class (IoU 0.5), in one plot."""
    labels = {category: label for label, category in report.category_ids.items()}
    for category, (recall, precision) in report.coco.pr_curves().items():
        name = class_name(report.class_names, labels.get(category, category))
        logger.report_scatter2d(
            f"{report.split} PR curve @IoU0.5",
            name,
            scatter=np.stack([recall, precision], axis=1),
            iteration=it,
            xaxis="recall",
            yaxis="precision",
            mode="lines",
        )


def report_confusion(
    logger,
    matrix: Tensor | np.ndarray,
    class_names: Sequence[str],
    stage: str,
    it: int,
    title: str = "confusion matrix @IoU0.5",
    series: str = "counts",
) -> None:
    """Rows: true class, columns: predicted class; index 0 is background."""
    labels = with_background(class_names)
    logger.report_confusion_matrix(
        f"{stage} {title}",
        series,
        # plotly draws z[i][j] at (x=xlabels[j], y=ylabels[i]): rows true, columns predicted
        matrix=np.asarray(matrix.cpu() if isinstance(matrix, Tensor) else matrix),
        iteration=it,
        xaxis="predicted",
        yaxis="true",
        xlabels=labels,
        ylabels=labels,
        yaxis_reversed=True,
    )


def report_debug_images(
    logger,
    images: Sequence[Tensor],
    targets: Sequence[Mapping],
    preds: Sequence[Mapping],
    class_names: Sequence[str],
    stage: str,
    it: int,
    score_threshold: float = 0.3,
) -> None:
    """A fixed set of images with ground truth (green) and predictions (class colours)."""
    drawn = [
        draw_boxes(img, class_names, t, p, score_threshold)
        for img, t, p in zip(images, targets, preds)
    ]
    logger.report_image(
        f"{stage} predictions",
        "ground truth (green) vs predictions",
        iteration=it,
        image=grid(drawn),
    )


def report_train_samples(
    logger, images: Sequence[Tensor], targets: Sequence[Mapping], class_names
) -> None:
    """Augmented training samples exactly as the model receives them."""
    drawn = [draw_targets(img, t, class_names) for img, t in zip(images, targets)]
    logger.report_image("train samples", "augmented", iteration=0, image=grid(drawn))


def dataset_rows(splits: Mapping[str, Sequence[DetectionRecord]], class_names) -> list[list]:
    """Images and boxes per class and split, as table rows."""
    rows = [["split", "images", "empty images", "boxes", *class_names]]
    for split, records in splits.items():
        counts = Counter(int(label) for r in records for label in r.labels)
        boxes = sum(counts.values())
        empty = sum(len(r.labels) == 0 for r in records)
        rows.append(
            [
                split,
                len(records),
                empty,
                boxes,
                *(counts.get(i + 1, 0) for i in range(len(class_names))),
            ]
        )
    return rows


def report_dataset_summary(
    logger,
    splits: Mapping[str, Sequence[DetectionRecord]],
    class_names,
    checks: Sequence[Sequence],
) -> None:
    """Counts per class and split, the index-time checks (``[split, outcome, reason, count]``
    rows: skipped / fixed / noted), and the box-size distribution."""
    logger.report_table(
        "dataset", "images and boxes", iteration=0, table_plot=dataset_rows(splits, class_names)
    )
    header = ["split", "outcome", "reason", "count"]
    rows = [header, *checks] if checks else [header, ["all", "none", "no problems found", 0]]
    logger.report_table("dataset", "data checks", iteration=0, table_plot=rows)
    edges = np.array([0, 8, 16, 32, 64, 96, 128, 256, 512, np.inf])
    labels = [
        f"{int(a)}-{int(b)}" if np.isfinite(b) else f">={int(a)}"
        for a, b in zip(edges[:-1], edges[1:])
    ]
    for split, records in splits.items():
        hist, _ = np.histogram(box_sides(records), bins=edges)
        logger.report_histogram(
            "dataset box size",
            split,
            values=hist.tolist(),
            iteration=0,
            xlabels=labels,
            xaxis="box side, sqrt(area) px",
            yaxis="boxes",
        )


def box_sides(records: Sequence[DetectionRecord]) -> np.ndarray:
    """sqrt(area) of every box, the size COCO's small/medium/large split uses."""
    if not records:
        return np.zeros(0)
    wh = np.concatenate([r.boxes[:, 2:] - r.boxes[:, :2] for r in records])  # [N, 2]
    return np.sqrt(np.prod(wh.clip(0), axis=1))


def report_evaluation(logger, report, it: int = 0) -> None:
    """An evaluation report (:class:`lightdet.evaluation.report.EvaluationReport`) as ClearML's
    own plots: the per-class table, F1 against confidence (one series per class), the
    confusion matrix at the F1-optimal threshold, and the headline numbers as single values."""
    from lightdet.evaluation.report import F1_GRID, per_class_rows

    stage = report.split
    rows = [
        [("-" if v is None else f"{v:.4f}" if isinstance(v, float) else v) for v in row]
        for row in per_class_rows(report)
    ]
    logger.report_table(f"{stage} evaluation", "per class", iteration=it, table_plot=rows)
    for name, f1 in report.f1_curves.items():
        logger.report_scatter2d(
            f"{stage} F1 against confidence",
            name,
            iteration=it,
            scatter=np.stack([F1_GRID, f1], axis=1),
            xaxis="score threshold",
            yaxis="F1 (IoU 0.5)",
            mode="lines",
        )
    report_confusion(
        logger,
        report.confusion,
        report.class_names,
        stage,
        it,
        "confusion matrix at the F1 threshold",
        f"score >= {report.score_threshold:.3f}",
    )
    values = {f"{stage}/{n}": v for n, v in report.stats.items() if v >= 0}
    values[f"{stage}/voc_map"] = report.voc["map"]
    values[f"{stage}/voc_map_07"] = report.voc["map_07"]
    values[f"{stage}/f1_threshold"] = report.threshold["all"]["threshold"]
    for name, value in values.items():
        if value is not None:
            logger.report_single_value(name, float(value))
    report_errors(logger, report, it)


def report_errors(logger, report, it: int) -> None:
    """TIDE's breakdown: the table (dAP at IoU 0.5 and 0.5:0.95, counts), a bar chart of the
    AP each kind of error costs, and each dAP at IoU 0.5 as a single value
    (``<stage>/tide_<kind>_dap50``: comparable across tasks in ClearML's table)."""
    from lightdet.evaluation.errors import ERROR_NAMES, analysis_table

    errors = report.errors
    if errors is None:
        return
    stage = report.split
    rows = [[f"{v:.4f}" if isinstance(v, float) else v for v in r] for r in analysis_table(errors)]
    logger.report_table(f"{stage} errors (TIDE)", "dAP", iteration=it, table_plot=rows)
    kinds = list(errors.dap50)
    for series, values in (("IoU 0.5", errors.dap50), ("IoU 0.5:0.95", errors.dap)):
        logger.report_histogram(
            f"{stage} what the errors cost (dAP)",
            series,
            values=[values[k] for k in kinds],
            iteration=it,
            xlabels=[f"{k} ({ERROR_NAMES[k]})" for k in kinds],
            xaxis="error",
            yaxis="AP gained if fixed",
        )
    for kind, value in errors.dap50.items():
        logger.report_single_value(f"{stage}/tide_{kind.lower()}_dap50", value)
