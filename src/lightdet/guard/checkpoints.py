"""Checkpoints load as tensors and plain containers, and their stored config is checked.

A checkpoint's ``hyper_parameters.config`` is the run config, saved resolved: any
interpolation in it was put there by hand, and every ``_target_`` in it must pass the same
allow-list as a config from the command line before anything is instantiated from it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from lightdet.guard.interpolations import check_interpolations
from lightdet.guard.targets import check_targets


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects other than tensors and plain containers."""


class CheckpointMismatchError(ValueError):
    """A checkpoint trained for other classes or another architecture than the run's."""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{Path(path)}: refused: the file holds objects other than tensors and plain "
            f"containers (loaded with weights_only=True; {str(err).splitlines()[0]})"
        ) from err


def check_stored_config(config: Mapping, where: str) -> None:
    """Refuse a stored config with any interpolation or a target outside the allow-list."""
    check_interpolations(config, where, allow_any=False, skip=())
    check_targets(config, where)


def check_classes(path: str | os.PathLike, trained: list[str], data: list[str]) -> None:
    """A checkpoint's classes must be the data's, in the same order (labels are positions)."""
    if list(trained) != list(data):
        raise CheckpointMismatchError(
            f"{Path(path)}: trained on classes {list(trained)}, the data has {list(data)}"
        )


def weight_differences(
    expected: Mapping[str, torch.Tensor],
    saved: Mapping[str, torch.Tensor],
    optional: tuple[str, ...] = (),
) -> str | None:
    """What keeps ``saved`` weights from loading into a model with ``expected`` ones: the
    first missing, unexpected and reshaped names with counts, or None when they fit. Expected
    names ending in one of ``optional`` may be missing."""
    missing = sorted(k for k in expected if k not in saved and not k.endswith(optional))
    unexpected = sorted(set(saved) - set(expected))
    reshaped = [
        f"{k} {list(saved[k].shape)} vs {list(v.shape)}"
        for k, v in expected.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if not (missing or unexpected or reshaped):
        return None
    return "; ".join(
        f"{what} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
        for what, items in (("missing", missing), ("unexpected", unexpected),
                            ("shape checkpoint vs model", reshaped)) if items
    )  # fmt: skip


def check_checkpoint_fits(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], class_names: list[str]
) -> dict:
    """Compare a checkpoint with the model it is about to be loaded into; returns the checkpoint.

    Raises:
        CheckpointMismatchError: naming the class lists, or the first differing parameters and
            the model configs, instead of PyTorch's dump of every mismatched shape.
    """
    ckpt = load_checkpoint(path)
    hp = ckpt.get("hyper_parameters", {})
    if "class_names" in hp:
        check_classes(path, hp["class_names"], class_names)
    problems = weight_differences(state_dict, ckpt.get("state_dict", {}))
    if problems:
        net = hp.get("config", {}).get("model", {}).get("net", {})
        raise CheckpointMismatchError(
            f"{Path(path)}: another architecture than this run's model: {problems}. "
            f"The checkpoint's model.net: {net}"
        )
    return ckpt
