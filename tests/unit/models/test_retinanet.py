import urllib.error

import pytest
import torch

from lightdet.models.retinanet import build_retinanet

SMALL = {"fpn_channels": 32, "min_size": 96, "max_size": 96, "anchor_sizes": (16, 32, 64, 128, 256)}


def _batch():
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 112)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
        },  # a negative image
    ]
    return images, targets


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_train_and_inference_steps(backbone):
    model = build_retinanet(num_classes=4, backbone=backbone, **SMALL)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and set(out[0]) == {"boxes", "scores", "labels"}
    assert out[0]["boxes"].shape[-1] == 4


def test_focal_parameters_reach_the_head():
    model = build_retinanet(
        num_classes=4, backbone="resnet18", focal_alpha=-1, focal_gamma=0.5, **SMALL
    )
    head = model.head.classification_head
    assert (head.focal_alpha, head.focal_gamma) == (-1.0, 0.5)
    assert model.head.classification_head.cls_logits.out_channels == 9 * 4


def test_fpn_width_and_input_size_are_configurable():
    model = build_retinanet(num_classes=4, backbone="resnet34", **SMALL)
    assert model.backbone.out_channels == 32
    assert model.transform.min_size == (96,) and model.transform.max_size == 96


def test_unknown_backbone_names_the_setting():
    with pytest.raises(ValueError, match="model.net.backbone"):
        build_retinanet(num_classes=4, backbone="resnet7")


@pytest.mark.parametrize("pretrained", ["imagenet", "coco"])
def test_offline_download_error_names_the_setting(monkeypatch, pretrained):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    kwargs = {"backbone": "resnet50"} if pretrained == "coco" else {"backbone": "resnet18"}
    with pytest.raises(RuntimeError, match="model.net.pretrained=none"):
        build_retinanet(num_classes=4, pretrained=pretrained, **kwargs)


def test_group_norm_heads():
    model = build_retinanet(num_classes=4, backbone="resnet18", head_norm="group", **SMALL)
    for head in (model.head.classification_head, model.head.regression_head):
        norms = [m for m in head.modules() if isinstance(m, torch.nn.GroupNorm)]
        assert len(norms) == 4 and norms[0].num_groups == 32
    with pytest.raises(ValueError, match="model.net.head_norm"):
        build_retinanet(num_classes=4, backbone="resnet18", head_norm="batch", **SMALL)
