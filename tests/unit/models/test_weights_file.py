"""model.net.pretrained=<file>: weights of one's own, placed where they fit."""

import logging

import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from lightdet.models.weights_file import WeightsFileError
from lightdet.runs.build import build_net

NET = {
    "_target_": "lightdet.models.retinanet.build_retinanet",
    "backbone": "resnet18",
    "fpn_channels": 32,
    "min_size": 96,
    "max_size": 96,
}


def _net(pretrained, num_classes=4):
    return build_net(OmegaConf.create({**NET, "pretrained": str(pretrained)}), num_classes)


def test_a_classification_file_goes_into_the_trunk(tmp_path, caplog):
    torch.manual_seed(1)
    resnet = torchvision.models.resnet18(weights=None)  # a stand-in for resnet18-f37072fd.pth
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(resnet.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="lightdet.models.weights_file"):
        net = _net(path)
    body = net.backbone.body
    assert torch.equal(body.conv1.weight, resnet.conv1.weight)
    assert torch.equal(body.layer4[1].bn2.running_var, resnet.layer4[1].bn2.running_var)
    assert "120 of 122 tensors from resnet18-f37072fd.pth loaded into backbone.body" in caplog.text
    assert "not used: fc.weight, fc.bias" in caplog.text


def test_a_checkpoint_for_other_classes_gives_all_but_the_class_layer(tmp_path, caplog):
    torch.manual_seed(2)
    trained = _net("none", num_classes=6)
    path = tmp_path / "best.ckpt"  # lightdet's layout: the detector under state_dict, net.*
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in trained.state_dict().items()}, "epoch": 3}, path
    )
    with caplog.at_level(logging.INFO, logger="lightdet.models.weights_file"):
        net = _net(path, num_classes=4)
    mine, theirs = net.state_dict(), trained.state_dict()
    differ = sorted(k for k in mine if not torch.equal(mine[k], theirs[k]))
    assert differ == [
        "head.classification_head.cls_logits.bias",
        "head.classification_head.cls_logits.weight",
    ]
    assert "into the whole detector" in caplog.text


def test_a_file_for_another_network_is_refused_naming_the_setting(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(
        WeightsFileError,
        match=r"model.net.pretrained=.*mobilenet.pth: only \d+ "
        r"of its \d+ tensors fit",
    ):
        _net(path)
    with pytest.raises(WeightsFileError, match="no such file"):
        _net(tmp_path / "missing.pth")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(WeightsFileError, match="not a readable weights file"):
        _net(tmp_path / "text.pth")
