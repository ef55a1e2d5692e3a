"""State restored from a checkpoint is data: it may not name files outside the checkpoint's
own folder.

A resumed run hands each callback the state it saved (Lightning's ``load_state_dict``), and
``ModelCheckpoint`` acts on the paths in it: the top-k clean-up deletes the checkpoint its
state calls the k-th best. A ``last.ckpt`` of plain containers passes ``weights_only`` loading,
so a crafted or edited one could make a resumed run register any file as its best model and
then delete it. Here every path a callback's or loop's state names must resolve (as Lightning
would resolve it: relative to the working directory) inside the folder of the checkpoint being
restored, which is where a resumed run keeps writing its checkpoints; anything else is dropped
with a one-line warning before Lightning sees it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# ModelCheckpoint's state keys that are paths (its best_k_models is keyed by path)
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path", "dirpath")
KEYED_BY_PATH = ("best_k_models",)
_FILE_SUFFIXES = (".ckpt", ".pt", ".pth", ".json", ".yaml", ".csv", ".db")


def _looks_like_path(key: str, value: str) -> bool:
    if key in PATH_KEYS:
        return True
    return os.path.isabs(value) or ".." in Path(value).parts or value.endswith(_FILE_SUFFIXES)


def _inside(value: str, folder: Path) -> bool:
    return Path(os.path.realpath(value)).is_relative_to(folder)


def drop_outside_paths(checkpoint: dict, checkpoint_path: str | os.PathLike) -> list[str]:
    """Remove (in place) every path in ``checkpoint['callbacks']`` and ``['loops']`` that does
    not resolve inside ``checkpoint_path``'s folder: a path value becomes ``""`` (Lightning's
    "none"), a path-keyed entry is removed. Returns what was dropped, as ``where=value``."""
    folder = Path(os.path.realpath(Path(checkpoint_path).parent))
    dropped: list[str] = []
    for section in ("callbacks", "loops"):
        state = checkpoint.get(section)
        if isinstance(state, dict):
            _clean(state, section, folder, dropped)
    for item in dropped:
        log.warning(
            "%s: restored state names a file outside its folder %s, dropped: %s",
            checkpoint_path,
            folder,
            item,
        )
    return dropped


def _clean(node: dict, where: str, folder: Path, dropped: list[str]) -> None:
    for key in list(node):
        value: Any = node[key]
        here = f"{where}[{key!r}]"
        if isinstance(value, dict):
            if key in KEYED_BY_PATH:
                for path in [p for p in value if isinstance(p, str) and not _inside(p, folder)]:
                    dropped.append(f"{here}[{path!r}]")
                    del value[path]
            _clean(value, here, folder, dropped)
        elif isinstance(value, str) and value and _looks_like_path(str(key), value):
            if not _inside(value, folder):
                dropped.append(f"{here}={value!r}")
                node[key] = ""
