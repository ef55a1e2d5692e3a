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


class BadCheckpointFileError(ValueError):
    """A file given as a checkpoint that is missing, empty, truncated or not one at all."""


# torch.save writes a zip whose entries are stored, not compressed: what it declares it holds
# is about the file's own size. More than this over it is a zip bomb, refused before loading.
_ZIP_SLACK = 16 * 2**20


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """One line naming the path and what it is, for anything that is not a complete torch
    checkpoint file, before it is loaded (and before a command creates a task or a folder).

    Raises:
        BadCheckpointFileError: missing, not a regular file, empty, truncated or damaged (a
            zip without its central directory), a zip that declares far more than its size,
            or not a torch file at all (text, an image...).
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise BadCheckpointFileError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise BadCheckpointFileError(f"{path}: not a file (a checkpoint is a .ckpt file)")
    size = path.stat().st_size
    if size == 0:
        raise BadCheckpointFileError(f"{path}: empty file (0 bytes), not a checkpoint")
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"\x80"):  # torch's legacy (pre-zip) format: a pickle stream
        return path
    if not head.startswith(b"PK"):
        raise BadCheckpointFileError(
            f"{path}: not a checkpoint (a torch checkpoint is a zip "
            f"file; this one starts with {head!r})"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        raise BadCheckpointFileError(
            f"{path}: truncated or damaged checkpoint ({size:,} bytes; "
            f"{err}): a write that did not finish?"
        ) from err
    if declared > size + _ZIP_SLACK:
        raise BadCheckpointFileError(
            f"{path}: declares {declared:,} bytes inside a {size:,}-byte file: refused before "
            "loading (not what torch.save writes)"
        )
    return path


def load_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code; the
    file is checked first (:func:`check_checkpoint_file`). ``mmap``: tensors are mapped, not
    read, for a look at a checkpoint's small entries (config, callback states, keys)."""
    check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{Path(path)}: refused: the file holds objects other than tensors and plain "
            f"containers (loaded with weights_only=True; {str(err).splitlines()[0]})"
        ) from err
    except (RuntimeError, EOFError) as err:  # a file that passed the check but does not load
        first = (str(err).splitlines() or [type(err).__name__])[0]
        message = f"{Path(path)}: does not load as a checkpoint ({first})"
        raise BadCheckpointFileError(message) from err


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
        for what, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape checkpoint vs model", reshaped),
        )
        if items
    )


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
