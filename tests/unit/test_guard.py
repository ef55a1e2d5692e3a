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
