"""The evaluation report against pycocotools, and the files it writes."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightdet.evaluation.coco import format_stats
from lightdet.evaluation.report import EvaluatedImage, build_report, format_report, write_report

CLASSES = ["circle", "square", "triangle"]
CATEGORY_MAP = {7: 1, 3: 2, 11: 3}  # a COCO file's own ids -> labels


def _images(n: int = 40, seed: int = 0) -> list[EvaluatedImage]:
    """Ground truth with some crowd boxes; detections near it (jittered) plus false alarms."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        k = int(rng.integers(0, 6))
        xy, wh = rng.uniform(0, 100, (k, 2)), rng.uniform(4, 60, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        labels = rng.integers(1, 4, k)
        m = int(rng.integers(0, 8))
        fxy = rng.uniform(0, 100, (m, 2))
        pred_boxes = np.concatenate(
            [
                boxes + rng.normal(0, 3, boxes.shape),
                np.concatenate([fxy, fxy + rng.uniform(4, 60, (m, 2))], 1),
            ]
        )
        target = {"boxes": boxes, "labels": labels, "iscrowd": rng.random(k) < 0.1}
        pred = {
            "boxes": pred_boxes.astype(np.float32),
            "labels": np.concatenate([labels, rng.integers(1, 4, m)]),
            "scores": rng.random(k + m).astype(np.float32),
        }
        images.append(EvaluatedImage(100 + i, f"{i:04d}.jpg", 160, 160, target, pred))
    return images


def _pycocotools(ground_truth: dict, detections_file: str) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(ground_truth))
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections_file), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_detections_file_gives_the_printed_numbers_in_pycocotools(tmp_path):
    report = build_report(_images(), CLASSES, CATEGORY_MAP, "val")
    write_report(report, tmp_path)
    reference = _pycocotools(
        json.loads((tmp_path / "ground_truth.json").read_text()), str(tmp_path / "detections.json")
    )
    assert 0.05 < reference.stats[0] < 0.9  # a non-trivial case
    assert np.abs(np.asarray(report.coco.stats) - reference.stats).max() <= 1e-6
    assert format_stats(report.coco.stats) in format_report(report)
    # per class: AP from pycocotools' precision array, category by category
    for k, cat in enumerate(reference.params.catIds):
        p = reference.eval["precision"][:, :, k, 0, -1]
        assert report.coco.per_class[cat]["AP"] == pytest.approx(p[p > -1].mean(), abs=1e-6)


def test_files_use_the_datasets_own_ids_and_hold_the_table(tmp_path):
    images = _images()
    report = build_report(images, CLASSES, CATEGORY_MAP, "val")
    files = write_report(
        report,
        tmp_path,
        samples=[
            (
                torch.zeros(3, 64, 64),
                {k: torch.as_tensor(v) for k, v in images[0].target.items()},
                {k: torch.as_tensor(v) for k, v in images[0].pred.items()},
            )
        ],
        pictures=lambda image_id: torch.full((3, 64, 64), image_id / 100),
        anchor_sides=[32, 64],
    )
    names = {p.name for p in files}
    assert names == {
        "errors.json",
        "errors.png",
        "missed_sizes.png",
        "worst_images.png",
        "metrics.json",
        "per_class.csv",
        "detections.json",
        "ground_truth.json",
        "pr_curves.png",
        "f1_curve.png",
        "confusion_matrix.png",
        "confusion_matrix_normalized.png",
        "predictions.png",
    }
    for png in tmp_path.glob("*.png"):
        assert Image.open(png).size[0] > 300
    detections = json.loads((tmp_path / "detections.json").read_text())
    assert len(detections) == sum(len(i.pred["scores"]) for i in images)
    assert {d["category_id"] for d in detections} == {7, 3, 11}
    assert {d["image_id"] for d in detections} <= {i.image_id for i in images}
    first = images[0].pred  # xyxy -> xywh, the dataset's id for the label
    i0 = [d for d in detections if d["image_id"] == images[0].image_id][0]
    x1, y1, x2, y2 = first["boxes"][0].tolist()
    assert i0["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-4)
    assert i0["category_id"] == {1: 7, 2: 3, 3: 11}[int(first["labels"][0])]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["coco"]["map"] == pytest.approx(report.coco.stats[0])
    assert metrics["per_class"]["square"]["category_id"] == 3
    positives = sum(
        int(
            (i.target["labels"] == 2).sum()
            - (i.target["iscrowd"] & (i.target["labels"] == 2)).sum()
        )
        for i in images
    )
    assert metrics["per_class"]["square"]["gt_boxes"] == positives
    rows = list(csv.reader((tmp_path / "per_class.csv").open()))
    assert rows[0][:4] == ["class", "id", "gt boxes", "AP"]
    assert [r[0] for r in rows[1:]] == [*CLASSES, "all"]
    assert float(rows[-1][3]) == pytest.approx(report.coco.stats[0])
    errors = json.loads((tmp_path / "errors.json").read_text())
    assert errors["dap50"] == pytest.approx(report.errors.dap50)
    assert errors["costs_most"] in errors["dap50"]
    worst = errors["worst_images"]
    assert 0 < len(worst) <= 8 and worst[0]["missed"] == max(
        e["missed"] for e in report.errors.images.values()
    )
    missed = sum(e["missed"] for e in report.errors.images.values())
    assert len(errors["missed_sides"]) == missed
    # the gallery: one thumbnail a worst image, four to a row, pixels from ``pictures``
    gallery = np.asarray(Image.open(tmp_path / "worst_images.png"))
    assert gallery.shape[0] > 100 * ((len(worst) + 3) // 4)


def test_threshold_and_confusion_matrix_agree():
    report = build_report(_images(), CLASSES, CATEGORY_MAP, "val")
    best = report.threshold["all"]
    assert 0 < best["f1"] <= 1 and best["threshold"] == report.score_threshold
    # the confusion matrix counts, at that threshold, the true positives the F1 point counts
    # (up to ties between classes: the matrix matches regardless of class)
    matched = int(np.trace(report.confusion[1:, 1:]))
    kept_tp = round(best["recall"] * sum(report.positives.values()))
    assert abs(matched - kept_tp) <= 2
    assert report.confusion.shape == (4, 4)


def test_no_detections_at_all():
    images = _images(5)
    for image in images:
        image.pred = {
            "boxes": np.zeros((0, 4), np.float32),
            "scores": np.zeros(0, np.float32),
            "labels": np.zeros(0, np.int64),
        }
    report = build_report(images, CLASSES, {}, "test")
    assert report.coco.stats[0] in (0.0, -1.0)
    assert report.threshold["all"]["threshold"] is None and report.score_threshold == 0.25
    assert "best F1 0.000" in format_report(report)
