"""Checkpoints load as tensors and plain containers, and their stored config is checked.

A checkpoint's ``hyper_parameters.config`` is the run config, saved resolved: any
interpolation in it was put there by hand, and every ``_target_`` in it must pass the same
allow-list as a config from the command line before anything is instantiated from it.
"""

from __future__ import annotations

import functools
import os
import pickle
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightdet.guard.interpolations import check_interpolations
from lightdet.guard.targets import check_targets, current_names


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects other than tensors and plain containers."""


class CheckpointMismatchError(ValueError):
    """A checkpoint trained for other classes or another architecture than the run's."""


class BadCheckpointFileError(ValueError):
    """A file given as a checkpoint that is missing, empty, truncated or not one at all."""


# torch.save writes a zip whose entries are stored, not compressed: what it declares it holds
# is about the file's own size. More than this over it is a zip bomb, refused before loading.
_ZIP_SLACK = 16 * 2**20
_FRESH_S = 2.0  # facts of a file changed more recently are not kept


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


@dataclass(frozen=True)
class CheckpointFacts:
    """What lightdet needs to know of a checkpoint before using it, read once
    (:func:`inspect_checkpoint`); the weights are not among them."""

    path: Path
    resumable: bool  # a training state (optimizer states included), not weights only
    task_id: str | None  # the ClearML task the run recorded into (resume's callback state)
    config: dict = field(default_factory=dict)  # hyper_parameters.config, as stored
    class_names: list[str] | None = None
    # the weights' names and shapes, as tensors on the meta device (no data)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def data(self) -> dict | None:
        """The data config the checkpoint was trained with, as stored."""
        return self.config.get("data") or None


def inspect_checkpoint(path: str | os.PathLike) -> CheckpointFacts:
    """A checkpoint's facts: the file's checks (:func:`check_checkpoint_file`), then one load
    with the tensors memory-mapped (only the small entries are read). Kept for the file as it
    is (path, inode, size, modification time: a checkpoint is replaced by a rename), so
    composition, the run and the API read it once.

    Raises:
        BadCheckpointFileError, UnsafeCheckpointError: as :func:`load_checkpoint`.
    """
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError:
        check_checkpoint_file(path)  # names what is wrong with it
        raise
    key = (str(resolved), stat.st_ino, stat.st_size, stat.st_mtime_ns, str(path))
    if time.time() - stat.st_mtime < _FRESH_S:  # a rewrite within the clock's tick could keep
        return _inspect.__wrapped__(*key)  # size and time: a file this new is read each time
    return _inspect(*key)


@functools.lru_cache(maxsize=8)
def _inspect(resolved: str, inode: int, size: int, mtime_ns: int, shown: str) -> CheckpointFacts:
    ckpt = load_checkpoint(shown, mmap=True)
    if not isinstance(ckpt, dict):
        raise BadCheckpointFileError(f"{shown}: not a training checkpoint (no mapping inside)")
    hyper: Any = ckpt.get("hyper_parameters") or {}
    hyper = hyper if isinstance(hyper, dict) else {}
    states = ckpt.get("callbacks") or {}
    ids = [
        state.get("clearml_task_id")
        for key, state in (states.items() if isinstance(states, dict) else ())
        if str(key).startswith("ResumeCheckpoint") and isinstance(state, dict)
    ]
    config = hyper.get("config")
    state = ckpt.get("state_dict") or {}
    weights = {
        str(k): torch.empty(v.shape, device="meta")
        for k, v in (state.items() if isinstance(state, dict) else ())
        if isinstance(v, torch.Tensor)
    }
    return CheckpointFacts(
        path=Path(shown),
        resumable="optimizer_states" in ckpt,
        task_id=next((str(t) for t in ids if t), None),
        config=config if isinstance(config, dict) else {},
        class_names=hyper.get("class_names"),
        weights=weights,
    )


def check_stored_config(config: Mapping, where: str) -> None:
    """Refuse a stored config with any interpolation or a target outside the allow-list (a
    target lightdet has since moved counts as its new name: older checkpoints keep loading)."""
    check_interpolations(config, where, allow_any=False, skip=())
    check_targets(current_names(config), where)


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
) -> CheckpointFacts:
    """Compare a checkpoint with the model it is about to be loaded into, from its facts (the
    weights' names and shapes: nothing more is read); returns the facts.

    Raises:
        CheckpointMismatchError: naming the class lists, or the first differing parameters and
            the model configs, instead of PyTorch's dump of every mismatched shape.
    """
    facts = inspect_checkpoint(path)
    if facts.class_names is not None:
        check_classes(path, facts.class_names, class_names)
    problems = weight_differences(state_dict, facts.weights)
    if problems:
        net = facts.config.get("model", {}).get("net", {})
        raise CheckpointMismatchError(
            f"{Path(path)}: another architecture than this run's model: {problems}. "
            f"The checkpoint's model.net: {net}"
        )
    return facts
