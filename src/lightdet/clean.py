"""``make clean [SESSIONS=1]``: remove the run outputs (``logs/``, ``outputs/``, ``multirun/``),
saying what goes and how much; with ``--sessions``, also the offline ClearML sessions those runs
recorded (each run folder names its session in ``clearml_session.txt``), which live in
ClearML's cache, outside the runs. ``data/`` and ``.venv/`` are kept.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TARGETS = ("logs", "outputs", "multirun")
SESSION_NOTE = "clearml_session.txt"  # in a run folder: its offline session's folder


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    sizes = {}  # (device, inode) -> bytes: hard links count once
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            sizes[(st.st_dev, st.st_ino)] = st.st_size
    return sum(sizes.values())


def _human(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def offline_sessions(folders: list[Path]) -> list[Path]:
    """The offline ClearML sessions (folders and their ``.zip``) the runs under ``folders``
    recorded. Only paths that look like ClearML's (``.../offline/offline-<id>``) are taken."""
    found: list[Path] = []
    for folder in folders:
        for note in folder.rglob(SESSION_NOTE):
            session = Path(note.read_text().strip())
            if session.parent.name != "offline" or not session.name.startswith("offline-"):
                continue
            found += [p for p in (session, session.with_suffix(".zip")) if p.exists()]
    return sorted(set(found))


def clean(root: str | Path = ".", *, sessions: bool = False) -> list[str]:
    """Remove the run outputs under ``root`` (and their offline sessions); returns the lines
    that say what was removed."""
    root = Path(root)
    folders = [root / name for name in TARGETS if (root / name).exists()]
    found = offline_sessions(folders)
    lines, total = [], 0
    for path in [*folders, *(found if sessions else [])]:
        size = _size(path)
        total += size
        lines.append(f"removing {path} ({_human(size)})")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if found and not sessions:
        lines.append(f"kept {len(found)} offline ClearML session files of these runs "
                     f"({_human(sum(_size(p) for p in found))}, in {found[0].parent}); "
                     "make clean SESSIONS=1 removes them too")  # fmt: skip
    lines.append(f"removed {_human(total)}" if folders else "nothing to remove")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", action="store_true",
                        help="also remove the runs' offline ClearML sessions")  # fmt: skip
    args = parser.parse_args()
    print("\n".join(clean(".", sessions=args.sessions)))


if __name__ == "__main__":
    main()
