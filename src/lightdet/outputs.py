"""Folders and files lightdet may write into: only what it created itself.

Every folder lightdet creates for its outputs (a run folder, a checkpoints folder, a generated
dataset, a study, and each parent folder it had to create for them) carries a marker file,
``.lightdet``, in that folder itself. The marker is never inherited: a folder below a marked
one is lightdet's only with a marker of its own, so a marker that ends up in a user's folder
does not hand lightdet every folder below it. A folder that exists, holds anything and has no
marker belongs to someone else: writing into it is an error naming it and the config key that
pointed there, never a silent overwrite. An existing file is replaced only where lightdet's own
marker (or the file's own stamp) says lightdet wrote it. Which config keys name places lightdet
writes, and the rule for each, is :mod:`lightdet.guard.writes`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

MARKER = ".lightdet"
SESSION_NOTE = "clearml_session.txt"  # in a run folder: its offline session's folder


class ForeignFolderError(FileExistsError):
    """An output path points at files lightdet did not create."""


def is_ours(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` carries lightdet's marker in itself (a regular file, not a link)."""
    marker = Path(folder) / MARKER
    return marker.is_file() and not marker.is_symlink()


def _is_empty(folder: Path) -> bool:
    return not any(folder.iterdir())


def check_creatable(folder: str | os.PathLike, key: str) -> None:
    """Raise naming ``key`` when ``folder`` is a file, or cannot be created or written (a file
    in its path, a folder without write permission)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ForeignFolderError(f"{key}={folder}: exists and is not a folder")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        raise ForeignFolderError(f"{key}={folder}: cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ForeignFolderError(
            f"{key}={folder}: cannot be written: {existing} is not writable for this user"
        )


def check_free(folder: str | os.PathLike, key: str) -> None:
    """Raise naming ``key`` when ``folder`` exists, is not empty and is not lightdet's, or
    cannot be created or written (a file in its path, a folder without write permission)."""
    folder = Path(folder)
    check_creatable(folder, key)
    if folder.is_dir() and not is_ours(folder) and not _is_empty(folder):
        raise ForeignFolderError(
            f"{key}={folder}: the folder holds files lightdet did not create (no {MARKER} "
            "marker), and lightdet never writes into, replaces or deletes such files; point "
            f"{key} at a new or empty folder"
        )


def new_run_dir(folder: str | os.PathLike, kind: str = "run") -> Path:
    """A run folder no other process has: ``folder`` itself, created here (``mkdir`` either
    creates a folder or fails, atomically, also on a shared file system), or, when it exists
    already (another run started in the same second, or the clock went back), ``folder-2``,
    ``folder-3``... Marked as lightdet's."""
    folder = Path(folder)
    make_folders(folder.parent, kind="runs")
    for n in range(1, 10_000):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return mark(candidate, kind)
    raise FileExistsError(f"{folder}: no free run folder name after 10,000 tries")


def _write_marker(folder: Path, kind: str) -> None:
    stamp = {"created_by": "lightdet", "kind": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (folder / MARKER).write_text(json.dumps(stamp) + "\n")


def make_folders(folder: str | os.PathLike, kind: str = "folder") -> Path:
    """``mkdir -p`` that marks each folder it creates itself (and no folder that existed)."""
    folder = Path(folder)
    missing = []
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            break
        missing.append(candidate)
    for candidate in reversed(missing):
        try:
            candidate.mkdir()
        except FileExistsError:  # another process made it first: theirs to mark
            continue
        _write_marker(candidate, kind)
    return folder


def mark(folder: str | os.PathLike, kind: str) -> Path:
    """Create ``folder`` (and its missing parents, each marked) if needed and write the marker
    in it, unless it has one. Only for folders the caller checked (:func:`check_free`)."""
    folder = Path(folder)
    make_folders(folder.parent)
    folder.mkdir(exist_ok=True)
    if not is_ours(folder):
        _write_marker(folder, kind)
    return folder


def claim(folder: str | os.PathLike, key: str, kind: str = "run") -> Path:
    """:func:`check_free`, then :func:`mark`: the folder is lightdet's from now on."""
    check_free(folder, key)
    return mark(folder, kind)


def check_replaceable(path: str | os.PathLike, key: str, *, ours: bool = False) -> None:
    """A file may be written when it does not exist, when its folder is lightdet's, or when
    the caller recognised it as lightdet's own (``ours``)."""
    path = Path(path)
    if path.is_dir():
        raise ForeignFolderError(f"{key}={path}: is a folder")
    if path.exists() and not ours and not is_ours(path.parent):
        raise ForeignFolderError(
            f"{key}={path}: the file exists and lightdet did not write it; lightdet never "
            f"replaces such files: choose another {key}, or remove the file"
        )


def is_optuna_storage(path: str | os.PathLike) -> bool:
    """Whether an existing file is an SQLite database with Optuna's tables (opened read-only)."""
    try:
        with closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return False
    return {"studies", "version_info"} <= tables


def disk_usage(*paths: str | os.PathLike) -> int:
    """Bytes the files under ``paths`` take, each file once however many hard links name it
    (links are not followed)."""
    sizes = {}  # (device, inode) -> bytes
    for path in map(Path, paths):
        if path.is_symlink() or not path.exists():
            continue
        files = [path] if path.is_file() else path.rglob("*")
        for p in files:
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                sizes[(st.st_dev, st.st_ino)] = st.st_size
    return sum(sizes.values())


def human_size(n: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as ``du --si``)."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"
