"""Anchor coverage on a hand-made example, and the k-means pieces of the fit."""

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from lightdet.models.anchor_fit import coverage, kmeans_ratios, kmeans_shapes, model_boxes


class TwoByTwo(nn.Module):
    """A 64 px input, one feature level of 2 x 2 (stride 32), one 32 px square anchor per
    location: anchors [-16,-16,16,16], [16,-16,48,16], [-16,16,16,48], [16,16,48,48]."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = GeneralizedRCNNTransform(64, 64, [0.0] * 3, [1.0] * 3)
        self.anchor_generator = AnchorGenerator(sizes=((32,),), aspect_ratios=((1.0,),))

    def backbone(self, x):
        return OrderedDict(p3=torch.zeros(1, 8, 2, 2))


def _record(boxes, crowd=None):
    boxes = np.asarray(boxes, np.float32)
    return SimpleNamespace(
        boxes=boxes,
        width=64,
        height=64,
        iscrowd=np.zeros(len(boxes), bool) if crowd is None else crowd,
    )


def test_best_possible_recall_on_a_hand_made_example():
    records = [
        _record(
            [
                [16, 16, 48, 48],  # an anchor exactly: IoU 1
                [16, 16, 32, 32],  # a quarter of one: 256 / 1024 = 0.25
                [0, 0, 32, 32],
            ]
        ),  # across four: 256 / 1792 = 0.1429 with each
        _record(
            [
                [8, 8, 40, 40],  # 576 / 1472 = 0.3913
                [20, 18, 48, 48],  # inside one: 840 / 1024 = 0.8203
                [0, 0, 64, 64],
            ],  # crowd: left out
            crowd=np.array([False, False, True]),
        ),
    ]
    net = TwoByTwo()
    boxes = model_boxes(net, records)
    assert list(boxes.by_size) == [(64, 64)] and len(boxes.all()) == 5
    cov = coverage(net, boxes, threshold=0.5)
    expected = torch.tensor([1.0, 0.25, 256 / 1792, 576 / 1472, 840 / 1024])
    torch.testing.assert_close(cov.best_iou, expected)
    assert cov.bpr == pytest.approx(2 / 5)
    assert cov.mean_iou == pytest.approx(float(expected.mean()))
    rows = {name: (n, bpr, above) for name, n, bpr, above, _ in cov.rows(1, low=0.2)}
    assert rows["all boxes"] == (5, pytest.approx(0.4), pytest.approx(4 / 5))
    assert rows["small (< 32 px)"] == (2, 0.5, 1.0)  # 16 px (IoU 0.25) and 28 x 30 (0.82)
    assert rows[">= 30% of the image"][0] == 0  # 32 px of 64: a quarter


def test_kmeans_finds_the_shapes_and_ratios_there_are():
    rng = np.random.default_rng(0)
    wide = [[0, 0, 40 + d, 20 + d / 2] for d in rng.uniform(-2, 2, 50)]  # 2:1, h/w 0.5
    tall = [[0, 0, 10 + d / 2, 20 + d] for d in rng.uniform(-1, 1, 50)]  # 1:2, h/w 2
    boxes = torch.tensor(wide + tall, dtype=torch.float32)
    assert kmeans_ratios(boxes, 2) == [0.5, 2.0]
    shapes = kmeans_shapes(boxes, 2)
    torch.testing.assert_close(shapes, torch.tensor([[10.0, 20.0], [40.0, 20.0]]), atol=1.0, rtol=0)
