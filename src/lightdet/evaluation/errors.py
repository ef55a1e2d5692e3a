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

from lightdet.evaluation.coco import IOU_THRESHOLDS, CocoSplit, _run, text_table
from lightdet.evaluation.split import xyxy
from lightdet.evaluation.voc import walk

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
        images: per image id ``{"missed", "false_positives", "top_false_positive"}`` among
            the detections at or above the report's score threshold, matched at IoU 0.5 as its
            F1 threshold is (VOC's devkit); images with neither are left out.
        missed_sides, found_sides: sqrt(area) of the ground-truth boxes missed and found there.
    """

    ap50: float
    dap50: dict[str, float]
    dap: dict[str, float]
    counts: dict[str, int]
    images: dict[int, dict]
    missed_sides: np.ndarray
    found_sides: np.ndarray
    score_threshold: float = 0.0

    def main_error(self, strict: bool = False) -> str:
        """The error type that costs the most AP at IoU 0.5 (``strict``: over 0.5:0.95)."""
        costs = self.dap if strict else self.dap50
        return max(ERROR_TYPES, key=lambda k: costs.get(k, 0.0))

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
    images, missed, found = _per_image(split, score_threshold)
    return ErrorAnalysis(
        ap50=float(first["ap_base"]),
        dap50={k: float(first["delta_ap"][k]) for k in keys},
        dap={k: float(np.mean([r["delta_ap"][k] for r in at])) for k in keys},
        counts={k: int(first["counts"].get(k, 0)) for k in ERROR_TYPES},
        images=images,
        missed_sides=missed,
        found_sides=found,
        score_threshold=float(score_threshold),
    )


def _per_image(split: CocoSplit, score_threshold: float):
    """Per image: the boxes missed and the false positives among the detections scoring at
    least ``score_threshold``, matched at IoU 0.5 as the report's F1 threshold was (VOC's
    devkit); and the sides (sqrt area) of the boxes missed and found there."""
    kept = split.scores >= score_threshold
    dt = {
        "image": split.dt_image_ids[kept],
        "labels": split.dt_category_ids[kept],
        "boxes": xyxy(split.dt_boxes[kept]),
        "scores": split.scores[kept],
    }
    gt = {
        "image": split.gt_image_ids,
        "labels": split.gt_category_ids,
        "boxes": xyxy(split.gt_boxes),
        "iscrowd": split.iscrowd,
    }
    order, tp, taken = walk(dt, gt, 0.5)
    found = np.zeros(len(split.gt_areas), bool)
    found[taken[tp]] = True
    missed = ~found & ~split.iscrowd
    images: dict[int, dict] = {}

    def entry(image_id: int) -> dict:
        return images.setdefault(
            int(image_id), {"missed": 0, "false_positives": 0, "top_false_positive": 0.0}
        )

    for image_id in split.gt_image_ids[missed].tolist():
        entry(image_id)["missed"] += 1
    for image_id, score in zip(dt["image"][order][~tp].tolist(), dt["scores"][order][~tp]):
        e = entry(image_id)
        e["false_positives"] += 1
        e["top_false_positive"] = max(e["top_false_positive"], float(score))
    sides = np.sqrt(split.gt_areas)
    return images, np.sort(sides[missed]), np.sort(sides[found])


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
    table = text_table(analysis_table(analysis))
    main, strict = analysis.main_error(), analysis.main_error(strict=True)
    missed, found = len(analysis.missed_sides), len(analysis.found_sides)
    lines = [
        "errors (TIDE: the AP each kind of error costs, AP@0.5 "
        f"{analysis.ap50:.3f}; counts at IoU 0.5):",
        *table,
        f"costs most: {ERROR_NAMES[main]} at IoU 0.5 ({main}, dAP {analysis.dap50[main]:.3f}); "
        f"{ERROR_NAMES[strict]} over 0.5:0.95 ({strict}, dAP {analysis.dap[strict]:.3f})",
    ]
    if missed:
        lines.append(
            f"missed at score >= {analysis.score_threshold:.3f}: {missed} of {missed + found} "
            f"boxes, median side {np.median(analysis.missed_sides):.0f} px (found: "
            f"{np.median(analysis.found_sides) if found else float('nan'):.0f} px)"
        )
    return "\n".join(lines)
