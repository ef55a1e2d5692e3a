"""TIDE's error breakdown on hand-made cases whose answers are known: which type each error is,
and the AP fixing it gives back (COCO's AP over 101 recall points, worked out in each test)."""

from __future__ import annotations

import numpy as np
import pytest

from lightdet.evaluation.coco import CocoSplit
from lightdet.evaluation.errors import ERROR_TYPES, analyse_errors, format_analysis

A, C = [10, 10, 50, 50], [10, 120, 50, 160]  # two 40 px boxes of class 1
B = [100, 100, 150, 150]  # a 50 px box of class 2
BACKGROUND = [160, 10, 190, 40]  # overlaps nothing


def _shifted(box, dx):  # dx 22: IoU 0.29 with the box (720 / 2480); dx 7: IoU 0.702
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def _split(boxes, dets, classes=(1,)):
    """One 200 px image: ground truth ``[(box, class)]``, detections ``[(box, class, score)]``."""
    target = {
        "boxes": np.asarray([b for b, _ in boxes], np.float32),
        "category_ids": np.asarray([c for _, c in boxes]),
        "iscrowd": np.zeros(len(boxes), bool),
    }
    pred = {
        "boxes": np.asarray([d[0] for d in dets], np.float32).reshape(-1, 4),
        "category_ids": np.asarray([d[1] for d in dets], np.int64),
        "scores": np.asarray([d[2] for d in dets], np.float32),
    }
    image = {"id": 1, "file_name": "a.png", "width": 200, "height": 200}
    return CocoSplit.of([image], [target], [pred], {c: f"class{c}" for c in classes})


def _only(analysis, kind, count=1):
    """``kind`` is the one error counted."""
    assert analysis.counts == {k: count if k == kind else 0 for k in ERROR_TYPES}


def test_a_perfect_detector_makes_no_error():
    a = analyse_errors(_split([(A, 1), (C, 1)], [(A, 1, 0.9), (C, 1, 0.8)]), 0.5)
    _only(a, None)
    assert a.ap50 == pytest.approx(1.0)
    assert all(v == pytest.approx(0, abs=1e-12) for v in a.dap50.values())
    assert a.images == {} and len(a.missed_sides) == 0 and a.found_sides.tolist() == [40, 40]


def test_a_shifted_box_is_a_localisation_error_worth_all_of_the_ap():
    a = analyse_errors(_split([(A, 1)], [(_shifted(A, 22), 1, 0.9)]), 0.5)
    _only(a, "Loc")
    assert a.ap50 == 0.0 and a.dap50["Loc"] == pytest.approx(1.0)
    assert a.main_error() == "Loc"


def test_a_box_slightly_off_is_a_localisation_error_only_at_strict_thresholds():
    """IoU 0.702: a hit at 0.5 ... 0.7, a localisation error at 0.75 ... 0.95: half of the ten."""
    a = analyse_errors(_split([(A, 1)], [(_shifted(A, 7), 1, 0.9)]), 0.5)
    _only(a, None)
    assert a.dap50["Loc"] == pytest.approx(0.0, abs=1e-12)
    assert a.dap["Loc"] == pytest.approx(0.5)


def test_a_wrong_label_is_a_classification_error():
    """Class 1 has no detection (AP 0); class 2 has the mislabelled box first, then its own
    (AP 0.5): mAP 0.25. Relabelled, both classes score 1: dAP 0.75."""
    boxes = [(A, 1), (B, 2)]
    a = analyse_errors(_split(boxes, [(A, 2, 0.9), (B, 2, 0.8)], (1, 2)), 0.5)
    _only(a, "Cls")
    assert a.ap50 == pytest.approx(0.25)
    assert a.dap50["Cls"] == pytest.approx(0.75)


def test_a_wrong_label_in_the_wrong_place_is_both():
    boxes = [(A, 1), (B, 2)]
    a = analyse_errors(_split(boxes, [(_shifted(A, 22), 2, 0.9), (B, 2, 0.8)], (1, 2)), 0.5)
    assert a.counts["Both"] == 1 and a.counts["Cls"] == a.counts["Loc"] == 0
    # the box cannot be given a class: it is removed, class 2 scores 1 -> mAP (0 + 1) / 2
    assert a.dap50["Both"] == pytest.approx(0.25)


def test_a_second_detection_of_a_found_box_is_a_duplicate():
    """A found (0.9), A again (0.8), C found (0.7): precision 1 up to recall 0.5, 2/3 up to 1,
    so AP = (51 + 50 * 2/3) / 101; without the duplicate, 1."""
    a = analyse_errors(_split([(A, 1), (C, 1)], [(A, 1, 0.9), (A, 1, 0.8), (C, 1, 0.7)]), 0.5)
    _only(a, "Dupe")
    assert a.ap50 == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert a.dap50["Dupe"] == pytest.approx(1 - (51 + 50 * 2 / 3) / 101)


def test_a_confident_box_on_nothing_is_a_background_error():
    """The background box first (0.95), then A: precision 0.5 at recall 1, AP 0.5."""
    a = analyse_errors(_split([(A, 1)], [(BACKGROUND, 1, 0.95), (A, 1, 0.9)]), 0.5)
    _only(a, "Bkg")
    assert a.ap50 == pytest.approx(0.5) and a.dap50["Bkg"] == pytest.approx(0.5)
    assert a.images == {
        1: {"missed": 0, "false_positives": 1, "top_false_positive": float(np.float32(0.95))}
    }


def test_a_box_nothing_detects_is_missed():
    """A found, C not: precision 1 up to recall 0.5, AP 51/101; C missed, fixed by not
    counting it: 1."""
    a = analyse_errors(_split([(A, 1), (C, 1)], [(A, 1, 0.9)]), 0.5)
    _only(a, "Miss")
    assert a.ap50 == pytest.approx(51 / 101)
    assert a.dap50["Miss"] == pytest.approx(50 / 101)
    assert a.missed_sides.tolist() == [40.0] and a.found_sides.tolist() == [40.0]
    assert a.worst_images() == [1]
    text = format_analysis(a)
    assert "costs most: missed at IoU 0.5 (Miss, dAP 0.495); missed over 0.5:0.95" in text
    assert "missed at score >= 0.500: 1 of 2 boxes, median side 40 px (found: 40 px)" in text


def test_the_worst_images_come_most_missed_first_then_most_confident_false_positive():
    images = [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in (1, 2, 3)]
    targets = [
        {"boxes": np.asarray([A, C], np.float32), "category_ids": [1, 1], "iscrowd": [0, 0]},
        {"boxes": np.asarray([A], np.float32), "category_ids": [1], "iscrowd": [0]},
        {"boxes": np.asarray([A], np.float32), "category_ids": [1], "iscrowd": [0]},
    ]
    preds = [
        {"boxes": np.zeros((0, 4), np.float32), "category_ids": [], "scores": []},  # 2 missed
        {
            "boxes": np.asarray([A, BACKGROUND], np.float32),
            "category_ids": [1, 1],
            "scores": [0.9, 0.6],
        },  # a false positive at 0.6
        {
            "boxes": np.asarray([A, BACKGROUND], np.float32),
            "category_ids": [1, 1],
            "scores": [0.9, 0.8],
        },  # a false positive at 0.8
    ]
    a = analyse_errors(CocoSplit.of(images, targets, preds, {1: "class1"}), 0.5)
    assert a.worst_images() == [1, 3, 2]
    assert a.images[1]["missed"] == 2 and a.images[3]["top_false_positive"] == pytest.approx(0.8)


def test_the_worst_images_count_at_the_reports_threshold():
    """C is found only at score 0.3: TIDE (every detection) counts no miss, the images and
    the missed sizes (detections kept at the report's threshold, 0.5) count C as missed."""
    a = analyse_errors(_split([(A, 1), (C, 1)], [(A, 1, 0.9), (C, 1, 0.3)]), 0.5)
    assert a.counts["Miss"] == 0
    assert a.images == {1: {"missed": 1, "false_positives": 0, "top_false_positive": 0.0}}
    assert a.missed_sides.tolist() == [40.0] and a.found_sides.tolist() == [40.0]
    assert analyse_errors(_split([(A, 1), (C, 1)], [(A, 1, 0.9), (C, 1, 0.3)]), 0.2).images == {}
