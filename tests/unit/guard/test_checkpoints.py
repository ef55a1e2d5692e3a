"""Checkpoints load as tensors and plain containers; a mismatch is named, not dumped."""

import pytest
import torch

from lightdet.guard import (
    CheckpointMismatchError,
    UnsafeCheckpointError,
    check_checkpoint_fits,
    load_checkpoint,
)
from lightdet.lightning.module import DetectionModule
from lightdet.models.retinanet import build_retinanet
from tests.unit.guard.payloads import crafted_pickle


def test_a_crafted_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = crafted_pickle(tmp_path, marker)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pt: refused"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the control: unguarded, it runs
    assert marker.exists()


def _checkpoint(tmp_path, net, class_names, config):
    path = tmp_path / "other.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    hp = {"class_names": class_names, "config": {"model": {"net": config}}}
    torch.save({"state_dict": state, "hyper_parameters": hp}, path)
    return path


def test_a_checkpoint_of_another_class_set_or_architecture_names_the_mismatch(tmp_path):
    small = {"backbone": "resnet18", "fpn_channels": 32, "min_size": 64, "max_size": 64}
    ours = DetectionModule(build_retinanet(num_classes=4, **small)).state_dict()
    classes = ["circle", "square", "triangle"]
    five = _checkpoint(tmp_path, build_retinanet(num_classes=6, **small), classes + ["a", "b"], {})
    with pytest.raises(CheckpointMismatchError, match=r"trained on classes \[.*'b'\], the data"):
        check_checkpoint_fits(five, ours, classes)
    wider = {**small, "fpn_channels": 64}
    other = _checkpoint(tmp_path, build_retinanet(num_classes=4, **wider), classes, wider)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"another architecture than this run's model:"
        r" shape checkpoint vs model \(\d+\): net\..* \[64, .*\] vs \[32, .*\], ...\. "
        r"The checkpoint's model.net: .*'fpn_channels': 64",
    ):
        check_checkpoint_fits(other, ours, classes)
    same = _checkpoint(tmp_path, build_retinanet(num_classes=4, **small), classes, small)
    assert check_checkpoint_fits(same, ours, classes)["hyper_parameters"]["class_names"] == classes
