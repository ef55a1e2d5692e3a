"""Why the mAP is what it is: TIDE's error breakdown, the worst images and the missed sizes.

TIDE (Bolya et al., ECCV 2020) sorts every false positive and false negative into one of six
types and gives each as the AP it would add if those errors were fixed (dAP), computed by
hotcoco's ``COCOeval.tide_errors`` on the same evaluator as COCO's numbers. A false positive is
judged against the ground truth at the IoU threshold ``t`` (foreground) and 0.1 (background):

- ``Cls`` (classification): IoU >= t with a box of another class;
- ``Loc`` (localisation): right class, 0.1 <= IoU < t;
- ``Both``: another class and 0.1 <= IoU < t;
- ``Dupe`` (duplicate): right class, IoU >= t, but a higher-scoring detection took the box;
- ``Bkg`` (background): IoU < 0.1 with every box;
- ``Miss`` (missed): ground-truth boxes no detection accounts for.

``FP`` and ``FN`` are the AP with every false positive removed and every missed box found.
The figures are at IoU 0.5 (TIDE's own) and averaged over COCO's ten thresholds (0.5:0.95),
over all classes: restricting the evaluator to one class would turn another class's
classification errors into background and missed ones, so there is no per-class breakdown.
Crowd boxes (VOC's difficult ones too) are ignored as COCO ignores crowds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightdet.evaluation.coco import IOU_THRESHOLDS, CocoSplit, _run

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
ERROR_NAMES = {
    "Cls": "classification",
    "Loc": "localisation",
    "Both": "class and place",
    "Dupe": "duplicate",
    "Bkg": "background",
    "Miss": "missed",
    "FP": "all false positives",
    "FN": "all false negatives",
}
BACKGROUND_IOU = 0.1  # TIDE's background threshold


@dataclass
class ErrorAnalysis:
    """The error breakdown of one evaluated split.

    Attributes:
        ap50: AP at IoU 0.5 (all classes, COCO's 101 recall points), the base of ``dap50``.
        dap50: error type (and ``FP``, ``FN``) -> dAP at IoU 0.5.
        dap: the same, averaged over COCO's ten IoU thresholds.
        counts: error type -> how many detections (``Miss``: boxes) at IoU 0.5.
        images: per image id ``{"missed", "false_positives", "top_false_positive"}`` at IoU 0.5
            and the report's score threshold (images with neither are left out).
        missed_sides, found_sides: sqrt(area) of the ground-truth boxes missed and found there.
    """

    ap50: float
    dap50: dict[str, float]
    dap: dict[str, float]
    counts: dict[str, int]
    images: dict[int, dict]
    missed_sides: np.ndarray
    found_sides: np.ndarray

    def main_error(self) -> str:
        """The error type that costs the most AP at IoU 0.5."""
        return max(ERROR_TYPES, key=lambda k: self.dap50.get(k, 0.0))

    def worst_images(self, n: int = 8) -> list[int]:
        """Image ids: the most missed boxes first, then the most confident false positive."""
        ranked = sorted(
            self.images.items(),
            key=lambda kv: (-kv[1]["missed"], -kv[1]["top_false_positive"], kv[0]),
        )
        return [image_id for image_id, _ in ranked[:n]]


def analyse_errors(split: CocoSplit, score_threshold: float) -> ErrorAnalysis:
    """TIDE's breakdown of ``split``, its worst images and missed sizes at ``score_threshold``."""
    evaluator = _run(split, None)
    at = [evaluator.tide_errors(pos_thr=float(t), bg_thr=BACKGROUND_IOU) for t in IOU_THRESHOLDS]
    first = at[0]
    keys = [*ERROR_TYPES, "FP", "FN"]
    images, missed, found = _per_image(evaluator, split, score_threshold)
    return ErrorAnalysis(
        ap50=float(first["ap_base"]),
        dap50={k: float(first["delta_ap"][k]) for k in keys},
        dap={k: float(np.mean([r["delta_ap"][k] for r in at])) for k in keys},
        counts={k: int(first["counts"].get(k, 0)) for k in ERROR_TYPES},
        images=images,
        missed_sides=missed,
        found_sides=found,
    )


def _per_image(evaluator, split: CocoSplit, score_threshold: float):
    """Per image: missed boxes and false positives at IoU 0.5 above ``score_threshold``; and
    the sides (sqrt area) of the boxes missed and found there."""
    diagnosed = evaluator.image_diagnostics(iou_thr=0.5, score_thr=float(score_threshold))
    images: dict[int, dict] = {}
    for image_id, summary in diagnosed["img_summary"].items():
        if summary["fn"] or summary["fp"]:
            images[int(image_id)] = {
                "missed": int(summary["fn"]),
                "false_positives": int(summary["fp"]),
                "top_false_positive": 0.0,
            }
    # annotation and detection ids are 1-based row numbers of the split's columns
    for dt_id, status in diagnosed["dt_status"].items():
        if status == "fp":
            row = int(dt_id) - 1
            entry = images.get(int(split.dt_image_ids[row]))
            if entry is not None:
                entry["top_false_positive"] = max(
                    entry["top_false_positive"], float(split.scores[row])
                )
    sides = np.sqrt(split.gt_areas)
    status = diagnosed["gt_status"]
    missed = [int(g) - 1 for g, s in status.items() if s == "fn"]
    matched = [int(g) - 1 for g, s in status.items() if s == "matched"]
    return images, np.sort(sides[missed]), np.sort(sides[matched])


def analysis_table(analysis: ErrorAnalysis) -> list[list]:
    """The breakdown as rows: header, dAP at IoU 0.5 and 0.5:0.95, counts at 0.5."""
    header = ["", *ERROR_TYPES, "FP", "FN"]
    rows = [
        header,
        ["dAP @0.5", *(analysis.dap50[k] for k in header[1:])],
        ["dAP @0.5:0.95", *(analysis.dap[k] for k in header[1:])],
        ["count @0.5", *(analysis.counts[k] for k in ERROR_TYPES), "", ""],
    ]
    return rows


def format_analysis(analysis: ErrorAnalysis) -> str:
    """The console text: the table, the error that costs most, the worst images."""
    rows = analysis_table(analysis)
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(cells[0]))]
    table = [
        "  ".join(v.rjust(w) if c else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths)))
        for r in cells
    ]
    main = analysis.main_error()
    missed, found = len(analysis.missed_sides), len(analysis.found_sides)
    lines = [
        "errors (TIDE: the AP each kind of error costs, AP@0.5 "
        f"{analysis.ap50:.3f}; counts at IoU 0.5):",
        *table,
        f"costs most: {ERROR_NAMES[main]} ({main}, dAP@0.5 {analysis.dap50[main]:.3f})",
    ]
    if missed:
        lines.append(
            f"missed boxes: {missed} of {missed + found}, median side "
            f"{np.median(analysis.missed_sides):.0f} px (found: "
            f"{np.median(analysis.found_sides) if found else float('nan'):.0f} px)"
        )
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
