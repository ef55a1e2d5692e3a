"""The score threshold an evaluation chose, kept beside the checkpoint for ``predict`` and
``export`` (JSON only: reading it imports nothing heavy).

``<checkpoint>.eval.json`` records the checkpoint's size and modification time: a checkpoint
rewritten since (``last.ckpt`` after more training) no longer matches, and its stale threshold
is ignored.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from lightdet import outputs

log = logging.getLogger(__name__)
DEFAULT_SCORE_THRESHOLD = 0.25  # where no evaluation chose one


def sidecar(checkpoint: str | os.PathLike) -> Path:
    """Where the evaluation of ``checkpoint`` keeps its threshold."""
    path = Path(checkpoint)
    return path.with_name(path.name + ".eval.json")


def _stamp(checkpoint: Path) -> dict:
    stat = checkpoint.stat()
    return {"checkpoint": checkpoint.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def save_threshold(
    checkpoint: str | os.PathLike, best: dict, per_class: dict, evaluated_on: str
) -> Path | None:
    """Write the F1-optimal threshold (``best``: threshold, f1, precision, recall) beside
    ``checkpoint``. Only into lightdet's own folders: returns None where the folder is not
    lightdet's (a user's folder is never written into)."""
    checkpoint = Path(checkpoint)
    path = sidecar(checkpoint)
    if not outputs.is_ours(checkpoint.parent) or best.get("threshold") is None:
        return None
    content = {
        **_stamp(checkpoint),
        "evaluated_on": evaluated_on,
        "score_threshold": best,
        "per_class": per_class,
    }
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def default_threshold(checkpoint: str | os.PathLike | None) -> tuple[float, str]:
    """The score threshold predicting with ``checkpoint`` uses unless told otherwise, the same
    for ``make predict``, ``make export`` and ``Detector.predict``: the F1-optimal one its
    evaluation kept beside it, else :data:`DEFAULT_SCORE_THRESHOLD`. Returns it and where it
    came from."""
    kept = load_threshold(checkpoint) if checkpoint is not None else None
    if kept is not None:
        return kept["threshold"], f"F1-optimal on {kept.get('evaluated_on')}"
    return DEFAULT_SCORE_THRESHOLD, "default (no evaluation kept beside the checkpoint)"


def load_threshold(checkpoint: str | os.PathLike) -> dict | None:
    """The stored ``{"threshold", "f1", "precision", "recall", "evaluated_on"}`` of
    ``checkpoint``; None when there is none, it belongs to an earlier version of the file, or
    its threshold is no score (not a finite number in [0, 1]: said in a warning)."""
    checkpoint = Path(checkpoint)
    path = sidecar(checkpoint)
    try:
        content = json.loads(path.read_text())
        if {k: content.get(k) for k in ("checkpoint", "size", "mtime_ns")} != _stamp(checkpoint):
            return None
        best = dict(content["score_threshold"])
        threshold = float(best["threshold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        log.warning("%s: score_threshold %r is not a score in [0, 1]: not used", path, threshold)
        return None
    return {**best, "threshold": threshold, "evaluated_on": content.get("evaluated_on")}
