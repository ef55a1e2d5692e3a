"""The index of a split, cached: a second start on the same files does not read and check them
again.

Indexing reads every annotation and checks every image and box (decoding each image by
default): 37-42 s for 100,000 VOC images on 2 CPU cores, at every start. The checked records
and the checks' counts are kept in ``$LIGHTDET_CACHE_DIR/index`` (default
``~/.cache/lightdet/index``), under a key made of the source's settings, the split and the data
policy, and used again only while every file under the source's folders has the same path, size
and modification time as when they were indexed: a file added, removed, edited or touched means
indexing again. Arrays are stored with numpy (no pickle), the rest as JSON; a cache that does
not read back whole is ignored and written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lightdet.data.checks import DataChecker
from lightdet.data.records import DetectionRecord

log = logging.getLogger(__name__)

VERSION = 1


def cache_dir() -> Path:
    root = os.environ.get("LIGHTDET_CACHE_DIR") or Path.home() / ".cache" / "lightdet"
    return Path(root) / "index"


def fingerprint(folders: list[Path]) -> tuple[str, int]:
    """A digest of every file under ``folders`` (path, size, modification time), and the newest
    modification time (ns)."""
    digest, newest = hashlib.sha256(), 0
    for folder in sorted(Path(f).resolve() for f in folders):
        digest.update(f"{folder}\0".encode())
        stack = [folder]
        while stack:
            current = stack.pop()
            try:
                entries = sorted(os.scandir(current), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=True):
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


def load(key: str, digest: str, checker: DataChecker) -> tuple[list[DetectionRecord], dict] | None:
    """The cached records (and the source's saved state), the checker given its counts; None
    when there is no cache for these files."""
    meta_path, arrays_path = cache_dir() / f"{key}.json", cache_dir() / f"{key}.npz"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("version") != VERSION or meta.get("fingerprint") != digest:
            return None
        with np.load(arrays_path, allow_pickle=False) as arrays:
            boxes, labels = arrays["boxes"], arrays["labels"]
            iscrowd, counts = arrays["iscrowd"], arrays["counts"]
        rows = meta["records"]
        if len(rows) != len(counts) or int(counts.sum()) != len(boxes):
            return None
        records, start = [], 0
        for row, n in zip(rows, counts.tolist()):
            end = start + n
            records.append(DetectionRecord(
                image_path=Path(row["image_path"]), image_id=row["image_id"], width=row["width"],
                height=row["height"], boxes=boxes[start:end].copy(),
                labels=labels[start:end].copy(), iscrowd=iscrowd[start:end].copy(),
                name=row["name"], source=row["source"],
                box_refs=list(row["box_refs"])))  # fmt: skip
            start = end
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name in ("skipped", "fixed", "noted"):
        getattr(checker, name).update(Counter(meta["checks"][name]))
    checker.examples.update(meta["checks"]["examples"])
    return records, meta.get("source_state", {})


def save(key: str, digest: str, records: list[DetectionRecord], checker: DataChecker,
         source_state: dict, newest_ns: int = 0) -> None:  # fmt: skip
    """Write the cache (a failure is only logged: the cache is an optimisation); not when a
    file changed in the last 2 seconds."""
    if time.time_ns() - newest_ns < SETTLED_NS:
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        counts = np.array([len(r.boxes) for r in records], dtype=np.int64)
        arrays = {
            "boxes": np.concatenate([np.asarray(r.boxes, np.float32).reshape(-1, 4)
                                     for r in records] or [np.zeros((0, 4), np.float32)]),
            "labels": np.concatenate([np.asarray(r.labels, np.int64).reshape(-1)
                                      for r in records] or [np.zeros(0, np.int64)]),
            "iscrowd": np.concatenate([np.asarray(r.iscrowd, bool).reshape(-1)
                                       for r in records] or [np.zeros(0, bool)]),
            "counts": counts,
        }  # fmt: skip
        rows = [{"image_path": str(r.image_path), "image_id": int(r.image_id),
                 "width": int(r.width), "height": int(r.height), "name": r.name,
                 "source": r.source, "box_refs": list(r.box_refs)} for r in records]  # fmt: skip
        meta = {"version": VERSION, "fingerprint": digest, "records": rows,
                "source_state": source_state,
                "checks": {"skipped": dict(checker.skipped), "fixed": dict(checker.fixed),
                           "noted": dict(checker.noted), "examples": checker.examples}}  # fmt: skip
        tmp_arrays = folder / f"{key}.tmp.npz"
        np.savez(tmp_arrays, **arrays)
        os.replace(tmp_arrays, folder / f"{key}.npz")
        tmp_meta = folder / f"{key}.json.tmp"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, folder / f"{key}.json")  # last: it names the arrays' files valid
    except OSError as err:
        log.warning("data: the index cache could not be written to %s (%s)", folder, err)
