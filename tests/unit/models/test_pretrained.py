"""model.net.pretrained=auto: COCO, else ImageNet weights where found; random on the shapes."""

import logging

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torchvision.models.detection import ssdlite

from lightdet.models import pretrained as auto
from lightdet.models.retinanet import build_retinanet
from lightdet.models.ssd import build_ssdlite
from lightdet.runs.build import build_net

SLIM = {
    "_target_": "lightdet.models.retinanet.build_retinanet",
    "backbone": "resnet18",
    "fpn_channels": 32,
    "head_norm": "group",
    "min_size": 96,
    "max_size": 96,
    "pretrained": "auto",
}
RESNET18 = "resnet18-f37072fd.pth"  # torchvision's ImageNet file: the name the cache holds


@pytest.fixture
def torch_cache(tmp_path, monkeypatch):
    """An empty torch cache, no network (as on these machines)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(auto, "downloads_possible", lambda: False)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_the_shapes_data_keeps_random_weights(torch_cache, caplog):
    torch.save(torchvision.models.resnet18().state_dict(), torch_cache / RESNET18)
    choice = auto.resolve(build_retinanet, SLIM, synthetic=True)
    assert (choice.pretrained, choice.warning) == ("none", None)
    with caplog.at_level(logging.INFO):
        build_net(OmegaConf.create(SLIM), 4, synthetic=True)
    assert "learnt from scratch" in caplog.text and "RANDOM" not in caplog.text


def test_own_data_without_weights_warns_with_the_files_to_fetch(torch_cache, caplog):
    with caplog.at_level(logging.WARNING):
        net = build_net(OmegaConf.create(SLIM), 4)
    assert isinstance(net, torch.nn.Module)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0]
    assert "RANDOM weights" in line and "not usable" in line
    assert f"https://download.pytorch.org/models/{RESNET18}" in line
    assert str(torch_cache) in line and "model.net.pretrained=<file>" in line


def test_imagenet_weights_in_the_cache_are_found_and_loaded(torch_cache, caplog):
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18()  # random values, the file's shapes and name
    torch.save(resnet.state_dict(), torch_cache / RESNET18)
    with caplog.at_level(logging.INFO):
        net = build_net(OmegaConf.create(SLIM), 4)
    body = net.backbone.body
    assert torch.equal(body.conv1.weight, resnet.conv1.weight)
    assert torch.equal(body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    assert f"ImageNet weights for the backbone from torch's cache ({torch_cache / RESNET18})" in (
        caplog.text
    )


@pytest.mark.slow
def test_coco_weights_come_before_imagenet_where_the_model_has_them(torch_cache):
    torch.manual_seed(4)
    coco = ssdlite.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)  # 91 labels
    weights = ssdlite.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1
    torch.save(coco.state_dict(), auto.cache_file(weights))
    imagenet = torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1
    torch.save(torchvision.models.mobilenet_v3_large().state_dict(), auto.cache_file(imagenet))
    cfg = {"_target_": "lightdet.models.ssd.build_ssdlite", "pretrained": "auto"}
    assert auto.resolve(build_ssdlite, cfg, synthetic=False).pretrained == "coco"
    net = build_net(OmegaConf.create(cfg), 4)
    ours, theirs = net.state_dict(), coco.state_dict()
    assert torch.equal(
        ours["backbone.features.0.0.0.weight"], theirs["backbone.features.0.0.0.weight"]
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if k.startswith("head.regression"))
    assert net.head.classification_head.module_list[0][1].out_channels == 6 * 4  # 4 labels


def test_coco_only_for_the_architectures_torchvision_trained():
    stock = {"backbone": "resnet50", "fpn_channels": 256, "head_norm": None}
    args = auto._settings(build_retinanet, stock)
    assert auto.coco_weights(build_retinanet, args).url.endswith(
        "retinanet_resnet50_fpn_coco-eeacb38b.pth"
    )
    for other in ({"head_norm": "group"}, {"fpn_channels": 64}, {"backbone": "resnet18"}):
        args = auto._settings(build_retinanet, {**stock, **other})
        assert auto.coco_weights(build_retinanet, args) is None
        assert auto.imagenet_weights(build_retinanet, args) is not None


def test_an_empty_cache_and_no_network_is_said_once_offline(monkeypatch):
    monkeypatch.setenv("LIGHTDET_WEIGHTS_OFFLINE", "1")
    auto.downloads_possible.cache_clear()
    assert auto.downloads_possible() is False
    auto.downloads_possible.cache_clear()
