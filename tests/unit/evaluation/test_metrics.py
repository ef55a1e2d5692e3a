import math

import torch

from lightdet.evaluation.metrics import build_map_metric, summarize
from lightdet.evaluation.predictions import finite_predictions

CLASSES = ["circle", "square", "triangle"]


def _target():
    return {"boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 90.0, 95.0]]),
            "labels": torch.tensor([1, 3]), "iscrowd": torch.tensor([False, False])}  # fmt: skip


def test_perfect_predictions_score_one_and_per_class_ap_is_named():
    metric = build_map_metric()
    t = _target()
    metric.update(
        [{"boxes": t["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": t["labels"]}], [t]
    )
    out = summarize(metric.compute(), CLASSES, "val")
    assert out["val/map"] == out["val/map_50"] == 1.0
    assert out["val/ap_circle"] == out["val/ap_triangle"] == 1.0
    assert "val/ap_square" not in out  # no ground truth: -1 is left out, not logged
    assert all(k.startswith("val/") for k in out)


def test_no_predictions_at_all_give_zero_not_a_crash():
    metric = build_map_metric()
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    metric.update([empty], [_target()])
    out = summarize(metric.compute(), CLASSES, "val")
    assert out["val/map"] == 0.0 and out["val/map_50"] == 0.0


def test_non_finite_predictions_are_dropped_and_counted():
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0], [math.nan, 0, 1, 1], [0, 0, math.inf, 1]])
    pred = {
        "boxes": boxes,
        "scores": torch.tensor([0.9, 0.99, 0.5]),
        "labels": torch.tensor([1, 1, 3]),
    }
    clean, dropped = finite_predictions([pred])
    assert dropped == 2
    assert clean[0]["boxes"].tolist() == [[10.0, 10.0, 50.0, 50.0]]
    assert clean[0]["labels"].tolist() == [1]


def test_pr_curves_per_class_with_ground_truth():
    from lightdet.evaluation.metrics import pr_curves

    metric = build_map_metric()
    t = _target()
    # class 1 found, class 3 predicted in the wrong place
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 5.0, 5.0]])
    metric.update(
        [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": t["labels"]}], [t]
    )
    curves = pr_curves(metric.compute())
    assert set(curves) == {1, 3}
    recall, precision = curves[1]
    assert recall.shape == precision.shape == (101,)
    assert precision.max() == 1.0 and precision.min() >= 0.0
    assert curves[3][1].max() == 0.0


def test_bf16_predictions_are_scored_as_their_exact_float32_values():
    """Mixed precision returns bf16 boxes. Scored as bf16, COCO's width x2 - x1 is rounded to
    bf16: [1.5, 131] gives 130, not 129.5, and the IoU with [0, 100] drops from 0.7519 to
    0.7490, below the 0.75 threshold. Cleaned to float32, the same values score exactly."""
    t = {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([1]),
         "iscrowd": torch.tensor([False])}  # fmt: skip
    pred = {"boxes": torch.tensor([[1.5, 0.0, 131.0, 100.0]], dtype=torch.bfloat16),
            "scores": torch.tensor([0.9], dtype=torch.bfloat16), "labels": torch.tensor([1])}
    assert pred["boxes"].float().tolist() == [[1.5, 0.0, 131.0, 100.0]]  # exact in bf16

    def score(p):
        metric = build_map_metric()
        metric.update([p], [t])
        return float(metric.compute()["map_75"])

    (clean,), _ = finite_predictions([pred])
    assert clean["boxes"].dtype == clean["scores"].dtype == torch.float32
    assert clean["boxes"].tolist() == pred["boxes"].float().tolist()  # the same values
    assert score(clean) == 1.0  # IoU 0.7519 >= 0.75
    assert score(pred) == 0.0  # what scoring the raw bf16 output gave
