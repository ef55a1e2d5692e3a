"""Configs and checkpoints that would run code we do not expect are refused."""

import os
import pickle

import pytest
import torch

from lightdet.evaluate import load_module
from lightdet.guard import UnsafeCheckpointError, UnsafeConfigError, check_targets, load_checkpoint
from lightdet.train import train
from tests.conftest import compose_train


class _Payload:
    """Unpickling this runs a command: what a crafted checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_shipped_training_config_is_allowed(tmp_path):
    check_targets(compose_train(tmp_path))


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "model.net._target_=os.system",
            r"model.net._target_='os.system' is not an allowed target",
        ),
        (
            "+callbacks.evil={_target_:subprocess.call,args:[ls]}",
            r"callbacks.evil._target_='subprocess.call'",
        ),
        ("callbacks.throughput.batch_size_fn.path=os.system", r"batch_size_fn.path='os.system'"),
        ("model.optimizer._target_=builtins.eval", r"builtins.eval"),
    ],
)
def test_a_config_override_naming_an_unexpected_callable_is_refused(tmp_path, override, message):
    cfg = compose_train(tmp_path, override)
    with pytest.raises(UnsafeConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()  # refused before anything was created


def test_the_machine_can_allow_more_targets(monkeypatch):
    cfg = {"model": {"net": {"_target_": "mypkg.models.build"}}}
    with pytest.raises(UnsafeConfigError):
        check_targets(cfg)
    monkeypatch.setenv("LIGHTDET_ALLOWED_TARGETS", "mypkg.models.")
    check_targets(cfg)


def test_a_crafted_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    with path.open("wb") as f:
        pickle.dump({"state_dict": {}, "payload": _Payload(marker)}, f)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.ckpt: refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_checkpoint_whose_stored_config_targets_an_unexpected_callable_is_refused(tmp_path):
    path = tmp_path / "odd.ckpt"  # loads fine with weights_only: it is all strings
    config = {"model": {"net": {"_target_": "subprocess.call", "args": ["ls"]}}}
    torch.save(
        {"state_dict": {}, "hyper_parameters": {"class_names": ["a"], "config": config}}, path
    )
    with pytest.raises(
        UnsafeConfigError, match=r"odd.ckpt: config.model.net: _target_='subprocess.call'"
    ):
        load_module(str(path), ["a"])


def _checkpoint(tmp_path, net, class_names, config):
    path = tmp_path / "other.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    hp = {"class_names": class_names, "config": {"model": {"net": config}}}
    torch.save({"state_dict": state, "hyper_parameters": hp}, path)
    return path


def test_a_checkpoint_of_another_class_set_or_architecture_names_the_mismatch(tmp_path):
    from lightdet.guard import CheckpointMismatchError, check_checkpoint_fits
    from lightdet.lightning.module import DetectionModule
    from lightdet.models.retinanet import build_retinanet

    small = {"backbone": "resnet18", "fpn_channels": 32, "min_size": 64, "max_size": 64}
    ours = DetectionModule(build_retinanet(num_classes=4, **small)).state_dict()
    classes = ["circle", "square", "triangle"]
    five = _checkpoint(tmp_path, build_retinanet(num_classes=6, **small), classes + ["a", "b"], {})
    with pytest.raises(CheckpointMismatchError, match=r"trained on classes \[.*'b'\], the data"):
        check_checkpoint_fits(five, ours, classes)
    wider = {**small, "fpn_channels": 64}
    other = _checkpoint(tmp_path, build_retinanet(num_classes=4, **wider), classes, wider)
    with pytest.raises(CheckpointMismatchError, match=r"another architecture than this run's model:"
                       r" shape checkpoint vs model \(\d+\): net\..* \[64, .*\] vs \[32, .*\], ...\. "
                       r"The checkpoint's model.net: .*'fpn_channels': 64"):  # fmt: skip
        check_checkpoint_fits(other, ours, classes)
    same = _checkpoint(tmp_path, build_retinanet(num_classes=4, **small), classes, small)
    assert check_checkpoint_fits(same, ours, classes)["hyper_parameters"]["class_names"] == classes
