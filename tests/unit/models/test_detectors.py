"""Every builder trains a step (finite losses) and infers (boxes, labels, scores) on CPU with
random weights; FCOS's focal parameters reach its loss."""

import urllib.error
from functools import partial

import pytest
import torch
from torchvision.models.detection.fcos import FCOSHead

from lightdet.models.faster_rcnn import build_faster_rcnn
from lightdet.models.fcos import FocalFCOSHead, build_fcos
from lightdet.models.retinanet import build_retinanet
from lightdet.models.ssd import build_ssd, build_ssd300_vgg16, build_ssdlite, ssd_aspect_ratios

SIZE = {"min_size": 96, "max_size": 96}
BUILDERS = {
    "ssd-vgg16": partial(build_ssd, backbone="vgg16", size=128),
    "ssd-resnet18": partial(build_ssd, backbone="resnet18", size=128),
    "ssd-resnet50": partial(build_ssd, backbone="resnet50", size=128),
    "ssd-mobilenet_v3_large": partial(build_ssd, backbone="mobilenet_v3_large", size=128),
    "ssd300_vgg16": build_ssd300_vgg16,
    "ssdlite": build_ssdlite,
    "fcos": partial(build_fcos, backbone="resnet18", fpn_channels=32, **SIZE),
    "faster_rcnn-v1": partial(
        build_faster_rcnn,
        backbone="resnet18",
        fpn_channels=32,
        anchor_sizes=(16, 32, 64, 128, 256),
        **SIZE,
    ),
    "faster_rcnn-v2": partial(
        build_faster_rcnn,
        backbone="resnet18",
        version="v2",
        fpn_channels=32,
        anchor_sizes=(16, 32, 64, 128, 256),
        **SIZE,
    ),
    "faster_rcnn-mobilenet": partial(
        build_faster_rcnn,
        backbone="mobilenet_v3_large",
        fpn_channels=32,
        anchor_sizes=(32, 64, 128),
        **SIZE,
    ),
    "retinanet_v2": partial(
        build_retinanet,
        backbone="resnet18",
        fpn_channels=32,
        head_norm="group",
        box_loss="giou",
        **SIZE,
    ),
}


def _batch():
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 112)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 20.0, 90.0, 40.0]]),
            "labels": torch.tensor([1, 3]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # negative
    ]
    return images, targets


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_training_and_inference_steps(name):
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=4)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        assert det["boxes"].shape[1] == 4 and det["boxes"].shape[0] == det["labels"].shape[0]
        assert det["labels"].dtype == torch.int64 and (det["labels"] >= 1).all()


def test_ssd_derives_maps_and_default_boxes_from_backbone_and_size():
    model = build_ssd(num_classes=4, backbone="resnet18", size=192, extra_channels=(64, 64, 32, 32))
    maps = model.backbone.eval()(torch.zeros(1, 3, 192, 192))
    assert [m.shape[-1] for m in maps.values()] == [12, 6, 3, 2, 1, 1]
    assert model.anchor_generator.aspect_ratios == ssd_aspect_ratios(6)
    assert ssd_aspect_ratios(6) == [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


def test_fcos_focal_loss_at_the_defaults_equals_torchvision_exactly():
    torch.manual_seed(0)
    ours = FocalFCOSHead(32, 1, 4)
    reference = FCOSHead(32, 1, 4)
    reference.load_state_dict(ours.state_dict())
    model = build_fcos(num_classes=4, backbone="resnet18", fpn_channels=32, **SIZE)
    images, targets = _batch()
    model.train()
    model.head = ours
    torch.manual_seed(1)
    ours_losses = model(images, targets)
    model.head = reference
    torch.manual_seed(1)
    ref_losses = model(images, targets)
    for key in ref_losses:
        assert torch.equal(ours_losses[key], ref_losses[key]), key


@pytest.mark.parametrize("alpha,gamma", [(0.5, 2.0), (0.25, 0.0), (-1.0, 1.0)])
def test_focal_alpha_and_gamma_reach_the_fcos_loss(alpha, gamma):
    def loss(**focal):
        torch.manual_seed(0)
        model = build_fcos(num_classes=4, backbone="resnet18", fpn_channels=32, **SIZE, **focal)
        return model(*_batch())

    default, changed = loss(), loss(focal_alpha=alpha, focal_gamma=gamma)
    assert not torch.equal(default["classification"], changed["classification"])
    assert torch.equal(default["bbox_regression"], changed["bbox_regression"])


def test_fcos_prior_probability_sets_the_bias():
    model = build_fcos(num_classes=4, backbone="resnet18", fpn_channels=32, prior_probability=0.1)
    bias = model.head.classification_head.cls_logits.bias
    assert torch.allclose(torch.sigmoid(bias), torch.full_like(bias, 0.1))


@pytest.mark.parametrize(
    "builder,kwargs",
    [
        (build_ssd300_vgg16, {"pretrained": "coco"}),
        (build_ssdlite, {"pretrained": "imagenet"}),
        (build_faster_rcnn, {"pretrained": "coco"}),
        (build_fcos, {"pretrained": "imagenet", "backbone": "resnet18"}),
        (build_ssd, {"pretrained": "imagenet", "backbone": "resnet18"}),
    ],
)
def test_offline_pretrained_weights_give_an_error_naming_the_setting(monkeypatch, builder, kwargs):
    def offline(*args, **kw):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="model.net.pretrained=none"):
        builder(num_classes=4, **kwargs)


def test_faster_rcnn_sampling_settings_reach_the_model():
    model = build_faster_rcnn(
        num_classes=4,
        backbone="resnet18",
        fpn_channels=32,
        rpn_batch_size_per_image=64,
        rpn_positive_fraction=0.25,
        box_batch_size_per_image=32,
        box_positive_fraction=0.5,
        rpn_post_nms_top_n_train=123,
    )
    rpn, roi = model.rpn, model.roi_heads
    assert rpn.fg_bg_sampler.batch_size_per_image == 64
    assert rpn.fg_bg_sampler.positive_fraction == 0.25
    assert rpn._post_nms_top_n["training"] == 123
    assert roi.fg_bg_sampler.batch_size_per_image == 32
    assert roi.fg_bg_sampler.positive_fraction == 0.5


def test_unknown_settings_are_refused_with_their_name():
    with pytest.raises(ValueError, match="model.net.version"):
        build_faster_rcnn(num_classes=4, version="v3")
    with pytest.raises(ValueError, match="model.net.box_loss"):
        build_retinanet(num_classes=4, backbone="resnet18", box_loss="l3")
    with pytest.raises(ValueError, match="model.net.backbone"):
        build_ssd(num_classes=4, backbone="alexnet")
