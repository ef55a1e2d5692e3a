"""Checkpoints load as tensors and plain containers; a mismatch is named, not dumped."""

import os

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
    assert check_checkpoint_fits(same, ours, classes).class_names == classes


def test_a_checkpoints_facts_are_read_once_and_again_when_the_file_is_replaced(
    tmp_path, monkeypatch
):
    from lightdet.guard import inspect_checkpoint
    from lightdet.lightning.checkpoint_io import atomic_save

    path = tmp_path / "last.ckpt"
    hp = {"class_names": ["a", "b"], "config": {"data": {"batch_size": 4}}}
    states = {"ResumeCheckpoint{}": {"clearml_task_id": "abc123"}}
    state = {"net.w": torch.zeros(3, 5)}
    atomic_save(
        {
            "state_dict": state,
            "optimizer_states": [{}],
            "hyper_parameters": hp,
            "callbacks": states,
        },
        path,
    )
    old = path.stat().st_mtime - 10
    os.utime(path, (old, old))  # not a file written this instant: its facts are kept
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    facts = inspect_checkpoint(path)
    assert (facts.resumable, facts.task_id, facts.class_names) == (True, "abc123", ["a", "b"])
    assert facts.data == {"batch_size": 4}
    assert {k: list(v.shape) for k, v in facts.weights.items()} == {"net.w": [3, 5]}
    assert inspect_checkpoint(path) is facts and inspect_checkpoint(str(path)) is facts
    assert len(loads) == 1  # one load, then none
    atomic_save({"state_dict": state, "hyper_parameters": hp}, path)  # replaced: weights only
    assert inspect_checkpoint(path).resumable is False  # fresh: read again
    assert inspect_checkpoint(path).task_id is None and len(loads) == 3


def test_a_checkpoint_written_before_a_target_moved_still_passes_its_check():
    """RunResults moved from lightdet.tracking.results to lightdet.lightning.results: the
    stored configs of older checkpoints name the old path (the default run's, before)."""
    from lightdet.guard import UnsafeConfigError, check_stored_config

    old = {"callbacks": {"run_results": {"_target_": "lightdet.tracking.results.RunResults"}}}
    check_stored_config(old, "old.ckpt: hyper_parameters.config")  # no error
    assert old["callbacks"]["run_results"]["_target_"] == "lightdet.tracking.results.RunResults"
    other = {"callbacks": {"x": {"_target_": "lightdet.tracking.results.save"}}}
    with pytest.raises(
        UnsafeConfigError, match=r"lightdet.tracking.results.save.*not a registered"
    ):
        check_stored_config(other, "old.ckpt: hyper_parameters.config")
