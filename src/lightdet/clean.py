"""``make clean [KEEP_SESSIONS=1]``: remove the run outputs under ``logs/``, ``outputs/`` and
``multirun/``, and the offline ClearML sessions those runs recorded (each run folder names its
session in ``clearml_session.txt``; they live in ClearML's cache, outside the project), saying
what goes and how much. With ``--keep-sessions`` the sessions stay, each listed with its path
and size: once the runs are gone nothing else leads to them (the sessions were kept by default
before, and a later ``make clean SESSIONS=1`` could not find them: 1.2 GB orphaned for one
user). ``data/`` and ``.venv/`` are kept.

Only folders that carry lightdet's own marker (:mod:`lightdet.outputs`) are removed, whole;
anything else under the output folders (a user's notes, a folder without a marker) is kept and
counted. Links are never followed, except that an output folder that is itself a link (``logs``
on another disk) is cleaned where it points. A session note is followed only into ClearML's
own offline folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from lightdet.outputs import SESSION_NOTE, disk_usage, human_size, is_ours

TARGETS = ("logs", "outputs", "multirun")


def offline_dir() -> Path:
    """ClearML's folder of offline sessions (``CLEARML_CACHE_DIR``, clearml.conf, default)."""
    from clearml.config import get_offline_dir

    return Path(os.path.realpath(get_offline_dir()))


def offline_sessions(folders: list[Path], offline: Path | None = None) -> list[Path]:
    """The offline ClearML sessions (folders and their ``.zip``) the runs in ``folders``
    recorded: only those directly in ClearML's offline folder (``offline-<id>``); a note that
    names anything else is ignored."""
    offline = offline_dir() if offline is None else offline
    found: list[Path] = []
    for folder in folders:
        for note in folder.rglob(SESSION_NOTE):
            if note.is_symlink() or not note.is_file():
                continue
            session = Path(os.path.realpath(note.read_text(errors="replace").strip()))
            if session.parent != offline or not session.name.startswith("offline-"):
                continue
            found += [
                p
                for p in (session, session.with_suffix(".zip"))
                if p.exists() and not p.is_symlink()
            ]
    return sorted(set(found))


def _outputs(root: Path) -> list[Path]:
    """The output folders to clean: each as the real folder (a link named ``logs`` is
    followed once; a link inside is never)."""
    found = []
    for name in TARGETS:
        path = root / name
        if path.is_dir():
            found.append(Path(os.path.realpath(path)))
    return found


def marked_folders(folder: Path) -> tuple[list[Path], int]:
    """The topmost folders carrying lightdet's marker under (and including) ``folder``, and
    how many other entries (files, links, unmarked folders' files) are left as they are."""
    if is_ours(folder):
        return [folder], 0
    marked, kept = [], 0
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            more, left = marked_folders(entry)
            marked, kept = marked + more, kept + left
        else:
            kept += 1
    return marked, kept


def clean(
    root: str | Path = ".", *, sessions: bool = True, offline: Path | None = None
) -> list[str]:
    """Remove lightdet's run outputs under ``root`` (and their offline sessions); returns the
    lines that say what was removed and what was kept."""
    folders, kept = [], 0
    for output in _outputs(Path(root)):
        more, left = marked_folders(output)
        folders, kept = folders + more, kept + left
    found = offline_sessions(folders, offline) if folders else []
    lines, total = [], 0
    for path in [*folders, *(found if sessions else [])]:
        size = disk_usage(path)
        total += size
        lines.append(f"removing {path} ({human_size(size)})")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if found and not sessions:
        lines.append(
            f"kept {len(found)} offline ClearML session files of these runs "
            f"({human_size(disk_usage(*found))}; nothing else names them now, remove them "
            "by hand when done, or upload one: make clearml-import SESSION=<path>):"
        )
        lines += [f"  {p} ({human_size(disk_usage(p))})" for p in found]
    if kept:
        lines.append(f"kept {kept} entries without lightdet's marker (not created by lightdet)")
    lines.append(f"removed {human_size(total)}" if folders else "nothing to remove")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep-sessions",
        action="store_true",
        help="keep the runs' offline ClearML sessions (each is listed with its path and size)",
    )
    args = parser.parse_args()
    print("\n".join(clean(".", sessions=not args.keep_sessions)))


if __name__ == "__main__":
    main()
