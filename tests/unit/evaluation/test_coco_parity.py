"""lightdet's COCO numbers against pycocotools on the committed edge-case set
(``tests/data/coco_parity``, written by its ``make.py``): crowd boxes, images without ground
truth or detections, more than 100 detections on an image, tied scores, a class only detected
and one never detected, areas on the size borders. Whatever evaluator lightdet uses must give
pycocotools' 12 numbers and its precision and recall arrays exactly."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lightdet.evaluation.coco import CocoSplit, coco_evaluate
from lightdet.evaluation.report import EvaluatedImage, build_report

DATA = Path(__file__).resolve().parents[2] / "data" / "coco_parity"


@pytest.fixture(scope="module")
def parity():
    gt = json.loads((DATA / "ground_truth.json").read_text())
    dets = json.loads((DATA / "detections.json").read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dets))), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return gt, dets, evaluator


def test_the_set_holds_every_edge_case(parity):
    gt, dets, _ = parity
    per_image = Counter(d["image_id"] for d in dets)
    with_gt = {a["image_id"] for a in gt["annotations"]}
    images = {i["id"] for i in gt["images"]}
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert images - with_gt and images - set(per_image) and images - with_gt - set(per_image)
    assert max(per_image.values()) > 100
    assert len({d["score"] for d in dets}) < len(dets)  # ties
    detected = {d["category_id"] for d in dets}
    annotated = {a["category_id"] for a in gt["annotations"]}
    assert detected - annotated and annotated - detected
    assert {32 * 32, 96 * 96} <= {a["area"] for a in gt["annotations"]}


def test_the_numbers_and_arrays_are_pycocotools_own(parity):
    gt, dets, reference = parity
    ours = coco_evaluate(gt, dets)
    assert ours.stats == [float(s) for s in reference.stats]
    assert 0 < ours.stats[0] < ours.stats[1] < 1  # a set that scores neither 0 nor 1
    np.testing.assert_array_equal(ours.precision, reference.eval["precision"])
    assert ours.category_ids == list(reference.params.catIds)


def test_the_report_scores_a_pass_as_pycocotools_scores_its_files(parity):
    """Through the report's path (per-image arrays, float32 boxes, xyxy): the set's boxes lie
    on a 1/16 px grid, exact in float32, so the numbers are still pycocotools' own."""
    gt, dets, reference = parity
    boxes, found = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        boxes[a["image_id"]].append(a)
    for d in dets:
        found[d["image_id"]].append(d)

    def xyxy(rows):
        xywh = np.asarray([r["bbox"] for r in rows], np.float64).reshape(-1, 4)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1).astype(np.float32)

    images = [
        EvaluatedImage(
            i["id"],
            i["file_name"],
            i["width"],
            i["height"],
            {
                "boxes": xyxy(boxes[i["id"]]),
                "labels": np.asarray([a["category_id"] for a in boxes[i["id"]]], np.int64),
                "iscrowd": np.asarray([bool(a["iscrowd"]) for a in boxes[i["id"]]]),
            },
            {
                "boxes": xyxy(found[i["id"]]),
                "scores": np.asarray([d["score"] for d in found[i["id"]]], np.float32),
                "labels": np.asarray([d["category_id"] for d in found[i["id"]]], np.int64),
            },
        )
        for i in gt["images"]
    ]
    # float32 scores: the ties stay ties, the order stays the order
    report = build_report(images, [c["name"] for c in gt["categories"]], {}, "val")
    assert report.coco.stats == [float(s) for s in reference.stats]
    np.testing.assert_array_equal(report.coco.precision, reference.eval["precision"])
    # and the files it writes hold the same boxes as the set
    written = CocoSplit.from_json(report.ground_truth, report.detections)
    np.testing.assert_array_equal(written.gt_boxes, CocoSplit.from_json(gt, dets).gt_boxes)
