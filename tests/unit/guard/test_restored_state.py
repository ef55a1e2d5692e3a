"""Paths in restored callback and loop state must stay inside the checkpoint's folder."""

from __future__ import annotations

import os

import torch

from lightdet.guard.restored_state import drop_outside_paths


def _state(folder, victim):
    return {
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/map'}": {
                "monitor": "val/map",  # a slash, but no path: kept
                "best_model_score": torch.tensor(0.5),
                "best_model_path": str(victim),
                "kth_best_model_path": str(folder / "best-epoch000.ckpt"),
                "dirpath": str(folder),
                "last_model_path": "",
                "best_k_models": {
                    str(victim): torch.tensor(0.9),
                    str(folder / "best-epoch000.ckpt"): torch.tensor(0.5),
                    str(folder / ".." / "x.ckpt"): torch.tensor(0.1),
                },
            },
            "Other": {"nested": {"file": "../../etc/passwd"}, "mode": "max"},
        },
        "loops": {"fit_loop": {"state_dict": {"note": "/tmp/elsewhere.ckpt"}}},
    }


def test_paths_outside_the_checkpoint_folder_are_dropped_and_inside_ones_kept(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    victim = tmp_path / "user" / "thesis.tex"
    checkpoint = _state(folder, victim)
    dropped = drop_outside_paths(checkpoint, folder / "last.ckpt")
    state = checkpoint["callbacks"]["ModelCheckpoint{'monitor': 'val/map'}"]
    assert state["best_model_path"] == "" and state["monitor"] == "val/map"
    assert state["dirpath"] == str(folder)
    assert state["kth_best_model_path"] == str(folder / "best-epoch000.ckpt")
    assert list(state["best_k_models"]) == [str(folder / "best-epoch000.ckpt")]
    assert checkpoint["callbacks"]["Other"] == {"nested": {"file": ""}, "mode": "max"}
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["note"] == ""
    assert len(dropped) == 5 and all("=" in d or "[" in d for d in dropped)


def test_a_relative_path_resolves_from_the_working_directory_as_lightning_would(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        inside = {"callbacks": {"M": {"best_model_path": "checkpoints/best.ckpt"}}}
        outside = {"callbacks": {"M": {"best_model_path": "best.ckpt"}}}  # beside, not inside
        assert drop_outside_paths(inside, folder / "last.ckpt") == []
        assert len(drop_outside_paths(outside, folder / "last.ckpt")) == 1
    finally:
        os.chdir(cwd)


def test_a_symlink_out_of_the_folder_counts_as_outside(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (tmp_path / "user").mkdir()
    (folder / "link.ckpt").symlink_to(tmp_path / "user" / "file")
    state = {"callbacks": {"M": {"best_model_path": str(folder / "link.ckpt")}}}
    assert len(drop_outside_paths(state, folder / "last.ckpt")) == 1
