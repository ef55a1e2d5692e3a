"""The evaluation report: COCO's 12 numbers, a per-class table, VOC AP, the F1-optimal score
threshold and a confusion matrix there; written as files and printed as text.

Built from what one evaluation pass saw (:class:`EvaluatedImage` per image), so everything in
it describes the same detections that ``detections.json`` holds.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from lightdet.data.classes import category_ids, class_name, with_background
from lightdet.evaluation.coco import (
    PER_CLASS_COLUMNS,
    STAT_NAMES,
    CocoResult,
    CocoSplit,
    cell,
    coco_evaluate,
    finite_or_none,
    format_stats,
    text_table,
)
from lightdet.evaluation.confusion import confusion_columns
from lightdet.evaluation.errors import ERROR_NAMES, ErrorAnalysis, analyse_errors, format_analysis
from lightdet.evaluation.thresholds import DEFAULT_SCORE_THRESHOLD
from lightdet.evaluation.voc import best_f1, columns, f1_curve, match_columns, pooled, voc_results

F1_GRID = np.linspace(0, 1, 101)


@dataclass
class EvaluatedImage:
    """One image of an evaluation pass: its identity and size, ground truth and detections
    (numpy; boxes xyxy in the image's pixels; ``iscrowd`` holds VOC's ``difficult``)."""

    image_id: int
    file_name: str
    width: int
    height: int
    target: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]


@dataclass
class EvaluationReport:
    """Everything ``make eval`` prints and writes (see :func:`build_report`)."""

    split: str
    class_names: list[str]
    category_ids: dict[int, int]  # label -> the dataset's category id
    coco: CocoResult
    voc: dict
    threshold: dict  # {"all": best_f1(...), name: best_f1(...) per class}
    confusion: np.ndarray  # [K + 1, K + 1] at the overall F1-optimal threshold
    f1_curves: dict[str, np.ndarray]  # name -> F1 over F1_GRID
    positives: dict[str, int]  # ground-truth boxes per class (not difficult/crowd)
    difficult: bool = False  # iscrowd held VOC's difficult: ignored the devkit's way
    columns: CocoSplit | None = field(repr=False, default=None)  # what was scored
    images: list[EvaluatedImage] = field(repr=False, default_factory=list)  # the same, per image

    @cached_property
    def errors(self) -> ErrorAnalysis | None:
        """TIDE's error breakdown at the report's score threshold (computed on first use: a
        validation pass's scalars do not need it, its written report does)."""
        return analyse_errors(self.columns, self.score_threshold) if self.columns else None

    @property
    def ground_truth(self) -> dict:
        """The COCO ground truth scored (``ground_truth.json``), built on each call."""
        return self.columns.ground_truth_json() if self.columns else {}

    @property
    def detections(self) -> list[dict]:
        """The COCO results scored (``detections.json``), built on each call."""
        return self.columns.detections_json() if self.columns else []

    @property
    def counts(self) -> tuple[int, int]:
        """(images, detections) scored."""
        return (len(self.columns.images), len(self.columns.scores)) if self.columns else (0, 0)

    @property
    def stats(self) -> dict[str, float]:
        """COCO's 12 numbers by lightdet's names (``map``, ``map_50``, ...; -1 where undefined)."""
        return dict(zip(STAT_NAMES, self.coco.stats))

    def class_coco(self, label: int) -> dict[str, float]:
        """COCO's per-class numbers of ``label`` (``AP``, ``AP50``, ..., ``AR100``; -1 where
        undefined), empty where COCO scored no such category."""
        return self.coco.per_class.get(self.category_ids[label], {})

    @property
    def score_threshold(self) -> float:
        """The overall F1-optimal threshold (or the stated default when none exists)."""
        return operating_threshold(self.threshold["all"])


def operating_threshold(best: Mapping) -> float:
    """A :func:`~lightdet.evaluation.voc.best_f1` point's threshold, or the stated default when
    there is none (no detections or no ground truth)."""
    return DEFAULT_SCORE_THRESHOLD if best["threshold"] is None else float(best["threshold"])


def build_report(
    images: Sequence[EvaluatedImage],
    class_names: Sequence[str],
    category_map: Mapping,
    split: str,
    *,
    difficult: bool = False,
) -> EvaluationReport:
    """Score one evaluation pass every way the report shows it (``difficult``: the targets'
    ``iscrowd`` flags are VOC's difficult, ignored the devkit's way in COCO's numbers too)."""
    names = list(class_names)
    ids = category_ids(names, category_map)  # label -> dataset category id
    targets, preds = [i.target for i in images], [i.pred for i in images]
    dt, gt = columns(preds, "scores"), columns(targets, "iscrowd")  # for VOC's matching
    top = max(
        [len(names), *ids, int(dt["labels"].max(initial=0)), int(gt["labels"].max(initial=0))]
    )
    lookup = np.arange(top + 1, dtype=np.int64)  # labels without a category id: as they are
    lookup[list(ids)] = list(ids.values())
    scored = CocoSplit.from_columns(
        [
            {"id": i.image_id, "file_name": i.file_name, "width": i.width, "height": i.height}
            for i in images
        ],
        dt,
        gt,
        {ids[k]: class_name(names, k) for k in ids},
        lookup,
    )
    matches = match_columns(dt, gt, list(ids))
    overall = pooled(list(matches.values()))
    threshold = {"all": best_f1(overall)}
    curves = {"all classes": f1_curve(overall, F1_GRID)}
    for label, m in matches.items():
        threshold[class_name(names, label)] = best_f1(m)
        curves[class_name(names, label)] = f1_curve(m, F1_GRID)
    confusion = confusion_columns(
        dt, gt, len(names) + 1, 0.5, operating_threshold(threshold["all"])
    )
    return EvaluationReport(
        split=split,
        class_names=names,
        category_ids=ids,
        coco=coco_evaluate(scored, difficult=difficult),
        voc=voc_results(matches),
        threshold=threshold,
        confusion=confusion,
        f1_curves=curves,
        positives={class_name(names, k): m.positives for k, m in matches.items()},
        difficult=difficult,
        columns=scored,
        images=list(images),
    )


def metrics(report: EvaluationReport) -> dict:
    """``metrics.json``: the COCO numbers by lightdet's names, VOC means, the threshold, and
    per class everything of the table (None where undefined)."""
    per_class = {
        class_name(report.class_names, label): _class_entry(report, label)
        for label in report.category_ids
    }
    return {
        "split": report.split,
        "coco": {n: finite_or_none(v) for n, v in report.stats.items()},
        "voc": {"map": report.voc["map"], "map_07": report.voc["map_07"]},
        "score_threshold": report.threshold["all"],
        "per_class": per_class,
    }


def model_card(report: EvaluationReport) -> dict:
    """What a registered model carries about its evaluation (flat, for a model registry):
    COCO's 12 numbers, VOC AP, the F1-optimal score threshold with its F1, precision and
    recall, the classes, the split and its size. Undefined numbers are None."""
    best = report.threshold["all"]
    return {
        "split": report.split,
        "images": report.counts[0],
        **{n: finite_or_none(v) for n, v in report.stats.items()},
        "voc_map": report.voc["map"],
        "voc_map_07": report.voc["map_07"],
        "score_threshold": report.score_threshold,
        "f1": best["f1"],
        "precision": best["precision"],
        "recall": best["recall"],
        "class_names": list(report.class_names),
    }


def _class_entry(report: EvaluationReport, label: int) -> dict:
    name = class_name(report.class_names, label)
    coco = report.class_coco(label)
    voc = report.voc["per_class"].get(label, {})
    best = report.threshold[name]
    return {
        "label": label,
        "category_id": report.category_ids[label],
        "gt_boxes": report.positives.get(name, 0),
        **{column: finite_or_none(coco.get(column, -1)) for column in PER_CLASS_COLUMNS},
        "voc_ap": voc.get("ap"),
        "voc_ap_07": voc.get("ap_07"),
        "f1": best["f1"],
        "f1_threshold": best["threshold"],
        "precision": best["precision"],
        "recall": best["recall"],
    }


def write_report(
    report: EvaluationReport,
    folder: Path,
    samples: Sequence = (),
    pictures: Callable[[int], object] | None = None,
    anchor_sides: Sequence[float] = (),
) -> list[Path]:
    """Write the report's files into ``folder``; returns their paths.

    ``metrics.json``, ``per_class.csv``, ``detections.json`` (COCO results: the dataset's own
    image and category ids), ``ground_truth.json`` (the COCO ground truth it was scored on),
    ``pr_curves.png``, ``f1_curve.png``, ``confusion_matrix.png`` and its normalised twin,
    ``errors.json`` and ``errors.png`` (TIDE's breakdown), ``missed_sizes.png`` (the sides of
    the boxes missed and found, ``anchor_sides`` marked), ``predictions.png`` (thumbnails of
    one size) when ``samples`` (image, target, prediction) are given, and ``worst_images.png``
    (the most missed boxes, then the most confident false positives) when ``pictures`` gives
    an image's pixels (as evaluated) by its id.
    """
    from lightdet.evaluation.plots import plot_confusion, plot_f1_curves, plot_pr_curves

    folder.mkdir(parents=True, exist_ok=True)
    files = [
        folder / "metrics.json",
        folder / "per_class.csv",
        folder / "detections.json",
        folder / "ground_truth.json",
    ]
    files[0].write_text(json.dumps(metrics(report), indent=2) + "\n")
    with files[1].open("w", newline="") as f:
        csv.writer(f).writerows(per_class_rows(report))
    files[2].write_text(json.dumps(report.detections))
    files[3].write_text(json.dumps(report.ground_truth))
    names = report.columns.categories if report.columns else {}
    curves = {names[c]: rp for c, rp in report.coco.pr_curves().items()}
    files.append(
        plot_pr_curves(curves, folder / "pr_curves.png", f"PR curves, IoU 0.5 ({report.split})")
    )
    files.append(
        plot_f1_curves(F1_GRID, report.f1_curves, report.threshold["all"], folder / "f1_curve.png")
    )
    labels = with_background(report.class_names)
    at = f"IoU 0.5, score >= {report.score_threshold:.3f}"
    files.append(
        plot_confusion(
            report.confusion,
            labels,
            folder / "confusion_matrix.png",
            False,
            f"confusion matrix\n({at})",
        )
    )
    files.append(
        plot_confusion(
            report.confusion,
            labels,
            folder / "confusion_matrix_normalized.png",
            True,
            f"confusion matrix, rows sum to 1\n({at})",
        )
    )
    if samples:
        files.append(_mosaic(report, samples, folder / "predictions.png"))
    files += _write_errors(report, folder, pictures, anchor_sides)
    return files


def _write_errors(report, folder: Path, pictures, anchor_sides: Sequence[float]) -> list[Path]:
    from lightdet.evaluation.plots import plot_box_sides, plot_errors

    errors = report.errors
    if errors is None:
        return []
    files = [folder / "errors.json"]
    files[0].write_text(json.dumps(errors_json(report), indent=2) + "\n")
    files.append(plot_errors(errors.dap50, errors.dap, ERROR_NAMES, folder / "errors.png"))
    files.append(
        plot_box_sides(
            errors.missed_sides,
            errors.found_sides,
            anchor_sides,
            folder / "missed_sizes.png",
            f"boxes missed and found (IoU 0.5, score >= {report.score_threshold:.3f})",
        )
    )
    worst = errors.worst_images()
    if pictures is not None and worst:
        by_id = {i.image_id: i for i in report.images}
        samples = [(pictures(i), by_id[i].target, by_id[i].pred) for i in worst if i in by_id]
        files.append(_mosaic(report, samples, folder / "worst_images.png"))
    return files


def errors_json(report: EvaluationReport) -> dict:
    """``errors.json``: TIDE's dAP at IoU 0.5 and 0.5:0.95, counts, the worst images (with
    their file names) and the missed boxes' sides."""
    errors = report.errors
    names = {i.image_id: i.file_name for i in report.images}
    return {
        "split": report.split,
        "score_threshold": report.score_threshold,
        "ap50": errors.ap50,
        "dap50": errors.dap50,
        "dap": errors.dap,
        "counts": errors.counts,
        "costs_most": errors.main_error(),
        "costs_most_0.5:0.95": errors.main_error(strict=True),
        "worst_images": [
            {"image_id": i, "file_name": names.get(i, ""), **errors.images[i]}
            for i in errors.worst_images()
        ],
        "missed_sides": errors.missed_sides.tolist(),
        "found_sides": errors.found_sides.tolist(),
    }


def _mosaic(report: EvaluationReport, samples: Sequence, path: Path) -> Path:
    from PIL import Image

    from lightdet.viz import draw_boxes, grid, thumbnail_size

    # thumbnails of one size, boxes and labels drawn at the thumbnail's scale: readable unzoomed
    cell = thumbnail_size([(image.shape[-1], image.shape[-2]) for image, _, _ in samples])
    drawn = [
        draw_boxes(image, report.class_names, target, pred, report.score_threshold, fit=cell)
        for image, target, pred in samples
    ]
    Image.fromarray(grid(drawn)).save(path)
    return path


def per_class_rows(report: EvaluationReport) -> list[list]:
    """The per-class table: header, one row per class, and ``all``."""
    header = [
        "class",
        "id",
        "gt boxes",
        *PER_CLASS_COLUMNS,
        "VOC AP",
        "VOC07 AP",
        "F1",
        "threshold",
        "precision",
        "recall",
    ]
    rows = [header]
    table = metrics(report)
    for name, e in table["per_class"].items():
        rows.append(
            [
                name,
                e["category_id"],
                e["gt_boxes"],
                *(e[c] for c in PER_CLASS_COLUMNS),
                e["voc_ap"],
                e["voc_ap_07"],
                e["f1"],
                e["f1_threshold"],
                e["precision"],
                e["recall"],
            ]
        )
    coco, best = table["coco"], table["score_threshold"]
    rows.append(
        [
            "all",
            "",
            sum(report.positives.values()),
            coco["map"],
            coco["map_50"],
            coco["map_75"],
            coco["map_small"],
            coco["map_medium"],
            coco["map_large"],
            coco["mar_100"],
            table["voc"]["map"],
            table["voc"]["map_07"],
            best["f1"],
            best["threshold"],
            best["precision"],
            best["recall"],
        ]
    )
    return rows


def format_report(report: EvaluationReport) -> str:
    """The console text: COCO's summary, the per-class table, VOC AP and the threshold."""
    table = text_table(per_class_rows(report))
    best = report.threshold["all"]
    voc = report.voc
    lines = [
        f"COCO bbox evaluation, {report.split} split ({report.counts[0]} "
        f"images, {report.counts[1]} detections):",
        format_stats(report.coco.stats),
        "",
        "per class (AP: IoU 0.50:0.95; F1 at IoU 0.5):",
        *table,
        "",
        f"Pascal VOC AP@0.5: {cell(voc['map'])} (area, VOC2010+), {cell(voc['map_07'])} "
        f"(11-point, VOC2007); {_IGNORED[report.difficult]}",
        f"best F1 {cell(best['f1'])} at score >= {cell(best['threshold'])} (precision "
        f"{cell(best['precision'])}, recall {cell(best['recall'])}): the threshold predict "
        "uses by default",
    ]
    if report.errors is not None:
        lines += ["", format_analysis(report.errors)]
    return "\n".join(lines)


_IGNORED = {
    True: "difficult boxes ignored the devkit's way (by IoU) in every number",
    False: "crowd boxes ignored (COCO: by the detection's area covered)",
}
