import math

import pytest
import torch

from lightdet.evaluation.coco import STAT_NAMES
from lightdet.evaluation.metrics import scalars
from lightdet.evaluation.predictions import finite_predictions
from lightdet.evaluation.report import build_report
from lightdet.lightning.recorder import EvaluationRecorder

CLASSES = ["circle", "square", "triangle"]


def _report(preds, targets):
    """One evaluation pass over these images, as the system records and reports it."""
    recorder = EvaluationRecorder()
    recorder.start()
    images = [torch.zeros(3, 400, 400)] * len(targets)
    targets = [{**t, "image_id": torch.tensor(i + 1)} for i, t in enumerate(targets)]
    recorder.keep(images, targets, preds)
    return build_report(recorder.finish(), CLASSES, {}, "val")


def _target():
    return {
        "boxes": torch.tensor([[10.0, 10.0, 50.0, 50.0], [60.0, 60.0, 90.0, 95.0]]),
        "labels": torch.tensor([1, 3]),
        "iscrowd": torch.tensor([False, False]),
    }


def test_perfect_predictions_score_one_and_per_class_ap_is_named():
    t = _target()
    report = _report(
        [{"boxes": t["boxes"], "scores": torch.tensor([0.9, 0.8]), "labels": t["labels"]}], [t]
    )
    out = scalars(report, "val")
    # pycocotools' precision is tp / (tp + fp + eps): a perfect score reads 1 - 2e-16
    perfect = pytest.approx(1.0, abs=1e-15)
    for key in ("val/map", "val/map_50", "val/ap_circle", "val/ap_triangle"):
        assert out[key] == perfect, key
    assert "val/ap_square" not in out  # no ground truth: -1 is left out, not logged
    assert all(k.startswith("val/") for k in out)


def test_no_predictions_at_all_give_zero_not_a_crash():
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    out = scalars(_report([empty], [_target()]), "val")
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
    t = _target()
    # class 1 found, class 3 predicted in the wrong place
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 5.0, 5.0]])
    report = _report(
        [{"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": t["labels"]}], [t]
    )
    curves = report.coco.pr_curves()
    assert set(curves) == {1, 3}
    recall, precision = curves[1]
    assert recall.shape == precision.shape == (101,)
    assert precision.max() == pytest.approx(1.0, abs=1e-15) and precision.min() >= 0.0
    assert curves[3][1].max() == 0.0


def test_bf16_predictions_are_scored_as_their_exact_float32_values():
    """Mixed precision returns bf16 boxes. Scored as bf16, COCO's width x2 - x1 is rounded to
    bf16: [1.5, 131] gives 130, not 129.5, and the IoU with [0, 100] drops from 0.7519 to
    0.7490, below the 0.75 threshold. Cleaned to float32, the same values score exactly."""
    t = {
        "boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]),
        "labels": torch.tensor([1]),
        "iscrowd": torch.tensor([False]),
    }
    pred = {
        "boxes": torch.tensor([[1.5, 0.0, 131.0, 100.0]], dtype=torch.bfloat16),
        "scores": torch.tensor([0.9], dtype=torch.bfloat16),
        "labels": torch.tensor([1]),
    }
    assert pred["boxes"].float().tolist() == [[1.5, 0.0, 131.0, 100.0]]  # exact in bf16

    def score(p):
        return scalars(_report([p], [t]), "val")["val/map_75"]

    (clean,), _ = finite_predictions([pred])
    assert clean["boxes"].dtype == clean["scores"].dtype == torch.float32
    assert clean["boxes"].tolist() == pred["boxes"].float().tolist()  # the same values
    assert score(clean) == pytest.approx(1.0, abs=1e-15)  # IoU 0.7519 >= 0.75
    # the recorder itself keeps the float32 of what it is given
    assert score(pred) == pytest.approx(1.0, abs=1e-15)


def test_the_metric_gives_pycocotools_numbers_exactly():
    """A random case with crowd boxes and every size range (where torchmetrics' own path was
    off in the 4th decimal): all 12 numbers equal pycocotools' on the same boxes."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    g = torch.Generator().manual_seed(0)
    preds, targets, gt, dets = [], [], [], []
    for image_id in range(1, 31):
        n, m = int(torch.randint(1, 6, (1,), generator=g)), 12
        xy = torch.rand(n, 2, generator=g) * 300
        boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 150], 1)
        labels = torch.randint(1, 4, (n,), generator=g)
        crowd = torch.rand(n, generator=g) < 0.15
        picks = torch.randint(0, n, (m,), generator=g)
        pred_boxes = boxes[picks] + torch.randn(m, 4, generator=g) * 8
        pred_labels = torch.where(
            torch.rand(m, generator=g) < 0.8, labels[picks], torch.randint(1, 4, (m,), generator=g)
        )
        scores = torch.rand(m, generator=g)
        preds.append({"boxes": pred_boxes, "scores": scores, "labels": pred_labels})
        targets.append({"boxes": boxes, "labels": labels, "iscrowd": crowd})
        for b, lab, c in zip(boxes.tolist(), labels.tolist(), crowd.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            gt.append(
                {
                    "id": len(gt) + 1,
                    "image_id": image_id,
                    "category_id": lab,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                    "iscrowd": int(c),
                }
            )
        for b, lab, sc in zip(pred_boxes.tolist(), pred_labels.tolist(), scores.tolist()):
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": lab,
                    "score": sc,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            )
    ours = dict(zip(STAT_NAMES, _report(preds, targets).coco.stats))
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i} for i in range(1, 31)],
        "annotations": gt,
        "categories": [{"id": c} for c in (1, 2, 3)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        reference = COCOeval(coco, coco.loadRes(dets), iouType="bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    assert 0.05 < float(ours["map"]) < 0.95  # a case with something to get right
    for name, value in zip(STAT_NAMES, reference.stats):
        assert abs(float(ours[name]) - value) < 1e-6, (name, float(ours[name]), value)
