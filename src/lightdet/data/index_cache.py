"""The index of a split, cached: a second start on the same files does not read and check them
again.

Indexing reads every annotation and checks every image and box (decoding each image by
default), at every start (benchmarks/results/indexing.md). The checked records
and the checks' counts are kept in ``$LIGHTDET_CACHE_DIR/index`` (default
``~/.cache/lightdet/index``), under a key made of the source's settings, the split and the data
policy, and used again only while every file under the source's folders has the same path, size
and modification time as when they were indexed: a file added, removed, edited or touched means
indexing again. Arrays are stored with numpy (no pickle), the rest as JSON.

The cache is untrusted input (anyone who can write the cache folder could edit it): only
regular files are opened (never through a link, never blocking on a FIFO or device), with
bounded sizes, and every record read back is checked as cheaply as at index time (its image
under the source's folders, finite boxes inside the image, labels of the classes, valid class
names); any damage means a warning and indexing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lightdet.data.checks import DataChecker
from lightdet.data.classes import check_class_names
from lightdet.data.records import DetectionRecord

MAX_BYTES = 2**31  # one cache file; a 100,000-image index is ~20 MB

log = logging.getLogger(__name__)

VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("LIGHTDET_CACHE_DIR") or Path.home() / ".cache" / "lightdet"
    return Path(root) / "index"


def fingerprint(folders: list[Path]) -> tuple[str, int]:
    """A digest of every file under ``folders`` (path, size, modification time), and the newest
    modification time (ns)."""
    digest, newest = hashlib.sha256(), 0
    visited: set[tuple[int, int]] = set()  # (device, inode): a link loop is walked once
    for folder in sorted(Path(f).resolve() for f in folders):
        digest.update(f"{folder}\0".encode())
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                st = os.stat(current)
                if (st.st_dev, st.st_ino) in visited:
                    continue
                visited.add((st.st_dev, st.st_ino))
                entries = sorted(os.scandir(current), key=lambda e: e.name)
            except OSError:  # gone, not a folder, a loop the system refuses, no permission
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                except OSError:
                    is_dir = False
                if is_dir:
                    stack.append(Path(entry.path))
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue  # a broken link: the checks name it when they meet it
                digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                newest = max(newest, st.st_mtime_ns)
    return digest.hexdigest(), newest


# a file changed this recently may change again within the file system's clock tick (a few ms)
# without its time changing: such an index is not kept (git's "racily clean" rule)
SETTLED_NS = 2_000_000_000


def cache_key(settings: dict, split: str, policy) -> str:
    policy_fields = {k: v for k, v in asdict(policy).items() if k != "cache_index"}
    text = json.dumps([VERSION, settings, split, policy_fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file (not a link, FIFO or device), at most :data:`MAX_BYTES`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            raise ValueError(f"{path}: not a regular file of at most {MAX_BYTES} bytes")
        return f.read(MAX_BYTES + 1)


def _arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, refused when its members declare more than the file holds
    (np.savez stores them uncompressed)."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(i.file_size for i in archive.infolist()) > len(data):
            raise ValueError("the arrays declare more bytes than the file holds")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {k: arrays[k] for k in ("boxes", "labels", "iscrowd", "counts")}


def load(
    key: str,
    digest: str,
    checker: DataChecker,
    folders: list[Path] | None = None,
    class_names: list[str] | None = None,
) -> tuple[list[DetectionRecord], dict] | None:
    """The cached records (and the source's saved state), the checker given its counts; None
    when there is no cache for these files, or it is damaged (said in a warning).

    Args:
        folders: the source's folders: every image must lie under one of them.
        class_names: the configured class names (None: the cached state's).
    """
    meta_path = cache_dir() / f"{key}.json"
    try:
        meta = json.loads(_read_regular(meta_path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return _damaged(meta_path, err)
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        return None
    if meta.get("fingerprint") != digest:
        return None
    try:
        arrays = _arrays(_read_regular(cache_dir() / f"{key}.npz"))
        state = meta.get("source_state", {})
        names = class_names if class_names is not None else (state or {}).get("class_names")
        records = _records(meta["records"], arrays, folders, names)
        counts = _counts(meta["checks"])
    except Exception as err:  # untrusted input: whatever is wrong, index again
        return _damaged(meta_path, err)
    for name in ("skipped", "fixed", "noted"):
        getattr(checker, name).update(Counter(counts[name]))
    checker.examples.update(counts["examples"])
    return records, state


def _damaged(path: Path, err: Exception) -> None:
    why = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    log.warning(
        "data: the index cache %s is damaged or not lightdet's (%s); indexing again", path, why
    )
    return None


def _records(rows, arrays: dict, folders: list[Path] | None, names) -> list[DetectionRecord]:
    """The records, each checked as the index checks it."""
    boxes, labels = arrays["boxes"], arrays["labels"]
    iscrowd, counts = arrays["iscrowd"], arrays["counts"]
    if (
        boxes.dtype != np.float32
        or boxes.ndim != 2
        or boxes.shape[1:] != (4,)
        or labels.dtype != np.int64
        or iscrowd.dtype != bool
        or counts.dtype != np.int64
    ):
        raise ValueError("arrays of unexpected types or shapes")
    if not isinstance(rows, list) or len(rows) != len(counts) or (counts < 0).any():
        raise ValueError("records and counts disagree")
    if not int(counts.sum()) == len(boxes) == len(labels) == len(iscrowd):
        raise ValueError("counts and arrays disagree")
    if names is not None:
        check_class_names(names, "the cached class names")
    bound = len(names) if names is not None else None
    roots = [os.path.abspath(f) for f in folders or []]
    records, start, ids = [], 0, set()
    for row, n in zip(rows, counts.tolist()):
        end = start + n
        record = DetectionRecord(
            image_path=Path(row["image_path"]),
            image_id=row["image_id"],
            width=row["width"],
            height=row["height"],
            boxes=boxes[start:end].copy(),
            labels=labels[start:end].copy(),
            iscrowd=iscrowd[start:end].copy(),
            name=row["name"],
            source=row["source"],
            box_refs=list(row["box_refs"]),
        )
        _check_record(record, roots, bound, ids)
        records.append(record)
        start = end
    return records


def _check_record(record: DetectionRecord, roots: list[str], bound: int | None, ids: set) -> None:
    path = str(record.image_path)
    if roots and (
        os.path.normpath(path) != path
        or not any(path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
    ):
        raise ValueError(f"{path}: not under the source's folders")
    for name in ("image_id", "width", "height"):
        if type(getattr(record, name)) is not int:
            raise ValueError(f"{path}: {name} is not an integer")
    if record.width <= 0 or record.height <= 0 or record.image_id in ids:
        raise ValueError(f"{path}: bad size or repeated image id")
    ids.add(record.image_id)
    b = record.boxes  # [N, 4]
    inside = (
        (b[:, 0] >= 0)
        & (b[:, 1] >= 0)
        & (b[:, 2] <= record.width)
        & (b[:, 3] <= record.height)
        & (b[:, 2] > b[:, 0])
        & (b[:, 3] > b[:, 1])
    )
    if not (np.isfinite(b).all() and inside.all()):
        raise ValueError(f"{path}: a box not finite or not inside the image")
    if (record.labels < 1).any() or (bound is not None and (record.labels > bound).any()):
        raise ValueError(f"{path}: a label outside 1..{bound}")
    if not all(isinstance(x, str) for x in (record.name, record.source, *record.box_refs)):
        raise ValueError(f"{path}: a name that is not text")


def _counts(checks: dict) -> dict:
    out = {}
    for name in ("skipped", "fixed", "noted"):
        counts = checks[name]
        if not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in counts.items()):
            raise ValueError(f"checks.{name}: not counts")
        out[name] = counts
    examples = checks["examples"]
    if not isinstance(examples, dict):
        raise ValueError("checks.examples: not a mapping")
    out["examples"] = examples
    return out


def save(
    key: str,
    digest: str,
    records: list[DetectionRecord],
    checker: DataChecker,
    source_state: dict,
    newest_ns: int = 0,
) -> None:
    """Write the cache (a failure is only logged: the cache is an optimisation); not when a
    file changed in the last 2 seconds."""
    if time.time_ns() - newest_ns < SETTLED_NS:
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        counts = np.array([len(r.boxes) for r in records], dtype=np.int64)
        arrays = {
            "boxes": np.concatenate(
                [np.asarray(r.boxes, np.float32).reshape(-1, 4) for r in records]
                or [np.zeros((0, 4), np.float32)]
            ),
            "labels": np.concatenate(
                [np.asarray(r.labels, np.int64).reshape(-1) for r in records]
                or [np.zeros(0, np.int64)]
            ),
            "iscrowd": np.concatenate(
                [np.asarray(r.iscrowd, bool).reshape(-1) for r in records] or [np.zeros(0, bool)]
            ),
            "counts": counts,
        }
        rows = [
            {
                "image_path": str(r.image_path),
                "image_id": int(r.image_id),
                "width": int(r.width),
                "height": int(r.height),
                "name": r.name,
                "source": r.source,
                "box_refs": list(r.box_refs),
            }
            for r in records
        ]
        meta = {
            "version": VERSION,
            "fingerprint": digest,
            "records": rows,
            "source_state": source_state,
            "checks": {
                "skipped": dict(checker.skipped),
                "fixed": dict(checker.fixed),
                "noted": dict(checker.noted),
                "examples": checker.examples,
            },
        }
        # fresh temporary files (never an existing name, which could be a link elsewhere)
        fd, tmp_arrays = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp_arrays, folder / f"{key}.npz")
        fd, tmp_meta = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(meta))
        os.replace(tmp_meta, folder / f"{key}.json")  # last: it names the arrays' files valid
    except OSError as err:
        log.warning("data: the index cache could not be written to %s (%s)", folder, err)
