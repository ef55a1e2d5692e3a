"""VOC difficult boxes in COCO's numbers: ignored by IoU as the devkit does, not as crowds."""

import numpy as np
import pytest

from lightdet.evaluation.coco import (
    IOU_THRESHOLDS,
    CocoSplit,
    _run,
    coco_evaluate,
    detections_json,
    ground_truth_json,
)
from lightdet.evaluation.difficult import per_threshold
from lightdet.evaluation.report import EvaluatedImage, build_report


def _case(boxes, difficult, det_boxes, scores, size=(400, 400)):
    images = [{"id": 1, "file_name": "a.jpg", "width": size[0], "height": size[1]}]
    target = {
        "boxes": np.asarray(boxes, np.float32),
        "category_ids": np.ones(len(boxes), np.int64),
        "iscrowd": np.asarray(difficult, bool),
    }
    pred = {
        "boxes": np.asarray(det_boxes, np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, np.float32),
        "category_ids": np.ones(len(scores), np.int64),
    }
    return ground_truth_json(images, [target], {1: "cell"}), detections_json([1], [pred])


def test_false_positives_inside_a_large_difficult_box_count():
    """The issue's case: five confident false positives inside a large difficult box, then the
    one object found. As crowds (IoU over the detection's area) they vanish and the image
    scores 1.0; the devkit ignores a detection only at IoU > 0.5 with a difficult box, so
    precision is 1/6 at every recall: AP 0.167 at every threshold."""
    fps = [[60 + 20 * i, 60, 75 + 20 * i, 75] for i in range(5)]  # 15 px inside 300 px
    gt, dets = _case(
        [[10, 10, 40, 40], [50, 50, 350, 350]],
        [False, True],
        [*fps, [10, 10, 40, 40]],
        [0.9, 0.85, 0.8, 0.75, 0.7, 0.5],
    )
    # pycocotools' precision is tp / (tp + fp + eps): a perfect score reads 1 - 2e-16
    assert coco_evaluate(gt, dets).stats[:3] == pytest.approx([1.0] * 3, abs=1e-15)
    devkit = coco_evaluate(gt, dets, difficult=True).stats
    assert devkit[:3] == pytest.approx([1 / 6] * 3, abs=1e-12)
    # a detection on the difficult box itself is neither true nor false, as in the devkit
    gt, dets = _case(
        [[10, 10, 40, 40], [50, 50, 350, 350]],
        [False, True],
        [[52, 50, 350, 352], [52, 50, 350, 352], [10, 10, 40, 40]],
        [0.9, 0.8, 0.5],
    )
    assert coco_evaluate(gt, dets, difficult=True).stats[:3] == pytest.approx([1.0] * 3, abs=1e-15)


def _voc2007_like(seed: int, n_images: int = 40):
    """Images with many difficult boxes (a third of the objects) in the left half, ordinary
    ones in the right half; detections: near-copies of most objects (IoU > 0.95), boxes
    shifted off the ordinary objects (localisation errors), small false positives inside
    difficult boxes, and random ones on the right. Also the detections the devkit sets
    aside: the near-copies of difficult boxes (best-IoU box difficult, at every threshold)."""
    rng = np.random.default_rng(seed)
    images, targets, preds, aside = [], [], [], []
    for image_id in range(1, n_images + 1):
        boxes, hard, det, det_cat, setaside = [], [], [], [], []
        cats = []
        for slot in range(rng.integers(1, 4)):  # difficult, on a grid: never overlapping
            x, y = 10 + 100 * (slot % 2), 10 + 130 * (slot // 2)
            w, h = rng.uniform(60, 90), rng.uniform(60, 110)
            boxes.append([x, y, x + w, y + h]), hard.append(True), cats.append(1 + slot % 2)
        for slot in range(rng.integers(1, 6)):  # ordinary objects, right half
            x, y = 420 + 120 * (slot % 3), 20 + 150 * (slot // 3)
            w, h = rng.uniform(20, 100), rng.uniform(20, 120)
            boxes.append([x, y, x + w, y + h]), hard.append(False), cats.append(1 + slot % 2)
        for box, is_hard, cat in zip(boxes, hard, cats):
            if rng.random() < 0.8:  # found, almost exactly
                det.append([v + rng.uniform(-0.5, 0.5) for v in box]), det_cat.append(cat)
                setaside.append(is_hard)
            if is_hard and rng.random() < 0.7:  # a small false positive inside it
                x, y = box[0] + 5, box[1] + 5
                det.append([x, y, x + 12, y + 12]), det_cat.append(cat), setaside.append(False)
            if not is_hard and rng.random() < 0.5:  # a localisation error
                dx = (box[2] - box[0]) * rng.uniform(0.2, 0.6)
                det.append([box[0] + dx, box[1], box[2] + dx, box[3]]), det_cat.append(cat)
                setaside.append(False)
        for _ in range(rng.integers(0, 3)):  # background false positives, right half
            x, y = rng.uniform(420, 700), rng.uniform(0, 350)
            det.append([x, y, x + 40, y + 40]), det_cat.append(int(rng.integers(1, 3)))
            setaside.append(False)
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 800, "height": 400})
        targets.append(
            {
                "boxes": np.asarray(boxes, np.float32),
                "category_ids": np.asarray(cats),
                "iscrowd": np.asarray(hard),
            }
        )
        preds.append(
            {
                "boxes": np.asarray(det, np.float32).reshape(-1, 4),
                "scores": rng.random(len(det)).astype(np.float32),
                "category_ids": np.asarray(det_cat, np.int64),
            }
        )
        aside.extend(setaside)
    categories = {1: "cat", 2: "dog"}
    return images, targets, preds, np.asarray(aside), categories


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_difficult_boxes_score_as_if_they_and_their_detections_were_not_there(seed):
    """An oracle that does not use the implementation: where every detection either sits on a
    difficult box (IoU > 0.95) or far from all (IoU < 0.05), the devkit's rule is removing the
    difficult boxes and the detections on them; COCO's evaluator then scores the rest. All 12
    numbers agree exactly; COCO's crowd rule (which also drops the small false positives
    inside difficult boxes) does not."""
    images, targets, preds, aside, categories = _voc2007_like(seed)
    gt = ground_truth_json(images, targets, categories)
    dets = detections_json([i["id"] for i in images], preds)
    assert len(dets) == len(aside) and aside.sum() > 10
    assert sum(a["iscrowd"] for a in gt["annotations"]) > len(gt["annotations"]) / 4
    plain_gt = {**gt, "annotations": [a for a in gt["annotations"] if not a["iscrowd"]]}
    oracle = coco_evaluate(plain_gt, [d for d, out in zip(dets, aside) if not out]).stats
    devkit = coco_evaluate(gt, dets, difficult=True).stats
    assert devkit == pytest.approx(oracle, abs=1e-12)
    assert coco_evaluate(gt, dets).stats[0] > devkit[0] + 0.01  # crowds hide false positives


def test_with_nothing_set_aside_the_per_threshold_scoring_is_cocos_own():
    """The per-threshold arrays, stacked, equal one COCO evaluation over the ten thresholds."""
    images, targets, preds, _, categories = _voc2007_like(3)
    for target in targets:
        target["iscrowd"] = np.zeros_like(target["iscrowd"])
    gt = ground_truth_json(images, targets, categories)
    dets = detections_json([i["id"] for i in images], preds)
    split = CocoSplit.from_json(gt, dets)
    whole = _run(split, None)

    def score(subset, t):
        run = _run(subset, [t])
        return np.asarray(run.eval["precision"]), np.asarray(run.eval["recall"])

    np.testing.assert_array_equal(whole.params.iou_thrs, IOU_THRESHOLDS)
    precision, recall = per_threshold(split, IOU_THRESHOLDS, score)
    np.testing.assert_array_equal(precision, whole.eval["precision"])
    np.testing.assert_array_equal(recall, whole.eval["recall"])


def test_the_report_scores_voc_data_the_devkit_way_and_says_so():
    fps = [[60 + 20 * i, 60, 75 + 20 * i, 75] for i in range(5)]
    image = EvaluatedImage(
        1,
        "a.jpg",
        400,
        400,
        {
            "boxes": np.asarray([[10, 10, 40, 40], [50, 50, 350, 350]], np.float32),
            "labels": np.asarray([1, 1]),
            "iscrowd": np.asarray([False, True]),
        },
        {
            "boxes": np.asarray([*fps, [10, 10, 40, 40]], np.float32),
            "scores": np.asarray([0.9, 0.85, 0.8, 0.75, 0.7, 0.5], np.float32),
            "labels": np.ones(6, np.int64),
        },
    )
    voc = build_report([image], ["cell"], {}, "val", difficult=True)
    coco = build_report([image], ["cell"], {}, "val")
    assert voc.stats["map_50"] == pytest.approx(1 / 6) and coco.stats["map_50"] == pytest.approx(
        1.0, abs=1e-15
    )
    assert voc.voc["map"] == pytest.approx(1 / 6)  # the VOC AP (devkit code) agrees
    from lightdet.evaluation.report import format_report

    assert "difficult boxes ignored the devkit's way" in format_report(voc)


def test_voc_sources_flag_difficult_and_coco_sources_crowds(tmp_path):
    from lightdet.data.sources import COCOSource, ShapesSource, VOCSource, YOLOSource

    assert VOCSource.difficult_boxes and not COCOSource.difficult_boxes
    assert not YOLOSource.difficult_boxes
    assert ShapesSource(tmp_path, format="voc").difficult_boxes
    assert not ShapesSource(tmp_path, format="coco").difficult_boxes
