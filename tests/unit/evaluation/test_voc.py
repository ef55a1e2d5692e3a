"""VOC AP and the F1 threshold on small examples computed by hand (see each test's comment)."""

import numpy as np
import pytest

from lightdet.evaluation.voc import (
    ClassMatches,
    best_f1,
    f1_curve,
    match_detections,
    pooled,
    precision_recall,
    voc_ap,
    voc_results,
)

BOX = [0.0, 0.0, 10.0, 10.0]


def _example():
    """Class 1. Image A: a box at BOX and a difficult one at [20, 20, 30, 30]; image B: a box at
    BOX. Detections, by score: A@BOX 0.9 (TP), A@difficult 0.8 (ignored), B far away 0.7 (FP),
    A@BOX again 0.6 (FP: taken), B@BOX 0.5 (TP). Class 2: one detection, no ground truth."""
    targets = [
        {
            "boxes": np.array([BOX, [20, 20, 30, 30]]),
            "labels": np.array([1, 1]),
            "iscrowd": np.array([False, True]),
        },
        {"boxes": np.array([BOX]), "labels": np.array([1]), "iscrowd": np.array([False])},
    ]
    preds = [
        {
            "boxes": np.array([BOX, [20, 20, 30, 30], BOX, [1, 1, 5, 5]]),
            "scores": np.array([0.9, 0.8, 0.6, 0.4]),
            "labels": np.array([1, 1, 1, 2]),
        },
        {
            "boxes": np.array([[50, 50, 60, 60], BOX]),
            "scores": np.array([0.7, 0.5]),
            "labels": np.array([1, 1]),
        },
    ]
    return preds, targets


def test_matching_follows_the_devkit():
    matches = match_detections(*_example(), labels=[1, 2])
    m = matches[1]
    assert m.scores.tolist() == [0.9, 0.7, 0.6, 0.5]  # the difficult match is not counted
    assert m.tp.tolist() == [True, False, False, True]
    assert m.positives == 2  # the difficult box is no positive
    assert matches[2].positives == 0 and matches[2].tp.tolist() == [False]


def test_voc_ap_area_and_eleven_point_by_hand():
    # recall .5 .5 .5 1, precision 1 .5 1/3 .5
    # area: envelope 1 up to recall .5, then .5 up to 1 -> .5 * 1 + .5 * .5 = .75
    # 11-point: t = 0 .. .5 (6 points) best precision 1, t = .6 .. 1 (5 points) .5 -> 8.5 / 11
    results = voc_results(match_detections(*_example(), labels=[1, 2]))
    assert results["per_class"][1]["ap"] == pytest.approx(0.75, abs=1e-12)
    assert results["per_class"][1]["ap_07"] == pytest.approx(8.5 / 11, abs=1e-12)
    assert results["per_class"][2] == {"ap": None, "ap_07": None, "positives": 0}
    assert results["map"] == pytest.approx(0.75)  # the class without ground truth is left out
    assert results["map_07"] == pytest.approx(8.5 / 11)


def test_iou_must_exceed_one_half():
    # [0, 0, 10, 10] against [0, 0, 10, 20]: IoU exactly 0.5, which the devkit's ">" refuses
    target = {
        "boxes": np.array([[0, 0, 10, 20]]),
        "labels": np.array([1]),
        "iscrowd": np.array([False]),
    }
    pred = {"boxes": np.array([BOX]), "scores": np.array([0.9]), "labels": np.array([1])}
    assert match_detections([pred], [target], [1])[1].tp.tolist() == [False]


def test_perfect_detections_score_one():
    m = ClassMatches(np.array([0.9, 0.8]), np.array([True, True]), 2)
    recall, precision = precision_recall(m)
    assert voc_ap(recall, precision) == 1.0 and voc_ap(recall, precision, True) == 1.0


def test_best_f1_by_hand():
    # F1 .667 (p 1, r .5) at 0.9, .5 at .7, .4 at .6, .667 (p .5, r 1) at .5: the first wins
    m = match_detections(*_example(), labels=[1])[1]
    assert best_f1(m) == pytest.approx(
        {"threshold": 0.9, "f1": 2 / 3, "precision": 1.0, "recall": 0.5}
    )


def test_best_f1_keeps_every_detection_tied_at_the_threshold():
    # at 0.8 a TP and an FP tie: keeping ">= 0.8" keeps both (p .5, r .5, F1 .5), so the
    # threshold cannot stop between them; 0.9 alone gives p 1, r .25, F1 .4; all four p .75 r .75
    m = ClassMatches(np.array([0.9, 0.8, 0.8, 0.7]), np.array([True, True, False, True]), 4)
    assert best_f1(m) == pytest.approx(
        {"threshold": 0.7, "f1": 0.75, "precision": 0.75, "recall": 0.75}
    )
    m = ClassMatches(np.array([0.9, 0.8, 0.8]), np.array([True, True, False]), 2)
    assert best_f1(m) == pytest.approx(  # F1 .667 at .9, .8 at .8 (p 2/3, r 1)
        {"threshold": 0.8, "f1": 0.8, "precision": 2 / 3, "recall": 1.0}
    )


def test_f1_curve_and_pooling():
    a = ClassMatches(np.array([0.9, 0.3]), np.array([True, False]), 1)
    b = ClassMatches(np.array([0.6]), np.array([True]), 2)
    both = pooled([a, b])
    assert both.scores.tolist() == [0.9, 0.6, 0.3] and both.positives == 3
    # >= 0.95: nothing kept; >= 0.5: two TPs (p 1, r 2/3, F1 .8); >= 0: p 2/3, r 2/3
    assert f1_curve(both, np.array([0.95, 0.5, 0.0])) == pytest.approx([0.0, 0.8, 2 / 3])
    assert best_f1(ClassMatches(np.zeros(0), np.zeros(0, bool), 3))["threshold"] is None
