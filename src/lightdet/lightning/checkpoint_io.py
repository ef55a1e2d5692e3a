"""Checkpoints written whole or not at all.

Lightning's default writer streams the file into its final name, so ``kill -9`` or a full disk
during a save (or a copy, when the checkpoint folder is on another file system than the
temporary folder) leaves a truncated ``last.ckpt`` in place of the good one. Here a save goes
to a temporary file in the checkpoint's own folder, is flushed to disk (``fsync``), then
renamed over the old file: a rename within one folder is atomic, so the folder holds either
the previous checkpoint or the new one. A failed save removes its temporary file; one left by
a killed process is removed by the next save into that folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from lightdet import outputs
from lightdet.guard.restored_state import drop_outside_paths

log = logging.getLogger(__name__)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def atomic_save(checkpoint: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into ``path`` atomically (see the module's docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.partial"):  # a killed writer's
        stale.unlink(missing_ok=True)
    tmp = _temporary(path)
    try:
        with tmp.open("wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # the rename itself on disk, where the file system allows it
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic for local paths (remote URLs: Lightning's own).

    Also the one door for checkpoint state: what a loaded checkpoint's callback and loop
    state names outside its own folder is dropped (:mod:`lightdet.guard.restored_state`), and
    a checkpoint is deleted (top-k clean-up) only inside a folder lightdet created.
    """

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        kwargs = {} if map_location is None else {"map_location": map_location}
        checkpoint = super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        if "://" not in str(path):
            drop_outside_paths(checkpoint, path)
        return checkpoint

    def remove_checkpoint(self, path) -> None:
        if "://" not in str(path) and not outputs.is_ours(Path(path).parent):
            log.warning("checkpoint clean-up: %s is not in a folder lightdet created; kept", path)
            return
        super().remove_checkpoint(path)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, path)
