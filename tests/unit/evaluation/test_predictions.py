"""Evaluation does not depend on batching: one forward per image size."""

from __future__ import annotations

import pytest
import torch

from lightdet.evaluation.predictions import predict_by_size
from lightdet.models.faster_rcnn import build_faster_rcnn
from lightdet.models.fcos import build_fcos
from lightdet.models.retinanet import build_retinanet
from lightdet.models.ssd import build_ssd

SMALL = {"min_size": 128, "max_size": 192}
FAMILIES = {
    "retinanet": lambda: build_retinanet(
        num_classes=4,
        backbone="resnet18",
        fpn_channels=64,
        head_norm="group",
        score_thresh=0.0,
        **SMALL,
    ),
    "ssd": lambda: build_ssd(
        num_classes=4, backbone="resnet18", size=96, extra_channels=[64, 64, 64, 64]
    ),
    "fcos": lambda: build_fcos(
        num_classes=4, backbone="resnet18", fpn_channels=64, score_thresh=0.0, **SMALL
    ),
    "faster_rcnn": lambda: build_faster_rcnn(
        num_classes=4, backbone="resnet18", fpn_channels=64, **SMALL
    ),
}


def _images():
    g = torch.Generator().manual_seed(0)
    sizes = [(96, 96), (72, 120), (96, 96), (120, 72), (72, 120)]  # three sizes, mixed order
    return [torch.rand(3, h, w, generator=g) for h, w in sizes]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_batch_of_mixed_sizes_gives_each_image_its_batch_of_one_result(family):
    torch.manual_seed(0)
    net = FAMILIES[family]().eval()
    images = _images()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        grouped = predict_by_size(net, images)
        alone = [net([image])[0] for image in images]
        padded = net(images)  # what evaluation did before: one padded batch
    for got, want in zip(grouped, alone):
        assert torch.equal(got["labels"], want["labels"])
        torch.testing.assert_close(got["scores"].float(), want["scores"].float(), atol=1e-6, rtol=0)
        torch.testing.assert_close(got["boxes"].float(), want["boxes"].float(), atol=1e-4, rtol=0)
    if family == "retinanet":  # GroupNorm heads: padding moved the smaller images' results
        moved = [not torch.equal(p["scores"], a["scores"]) for p, a in zip(padded, alone)]
        assert any(moved)
