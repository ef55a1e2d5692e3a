"""What one job of a study trains: the training overrides of its cell under the study's
budget, the folder it keeps them in, and the key that says a finished cell can be reused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lightdet.lightning.schedulers import clock

# the study's own keys on the command line: not training overrides
STUDY_KEYS = ("cell", "study")


class StudyConfigError(ValueError):
    """A study config or cell that cannot be run, named with its key."""


def training_overrides(task_overrides: Sequence[str]) -> list[str]:
    """The command line's overrides that are meant for training (``model=ssd``, ``data=voc``):
    all but the study's own keys (``cell=``, ``study.*``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    return [o.input_line for o in parsed if o.key_or_group.split(".")[0] not in STUDY_KEYS]


def cell_overrides(study: DictConfig, cell: str | None) -> list[str]:
    """The named override set of ``study.cells`` (none for ``cell=null``)."""
    if cell is None:
        return []
    cells = study.get("cells") or {}
    if cell not in cells:
        known = ", ".join(cells) or "none"
        raise StudyConfigError(f"cell={cell}: not a cell of study {study.name!r} (cells: {known})")
    return [str(o) for o in cells[cell]]


def checkpoint_of(study: DictConfig, cell: str | None) -> str | None:
    """The checkpoint ``study.checkpoints`` (``name=path`` entries) gives for ``cell``."""
    for entry in study.get("checkpoints") or []:
        name, sep, path = str(entry).partition("=")
        if not sep or not name or not path:
            raise StudyConfigError(f"study.checkpoints: {entry!r}: expected name=path")
        if name == cell:
            return path
    return None


def check_runtime_packages(study: DictConfig) -> None:
    """The file runtimes (``study.latency.runtimes``) need onnx and onnxruntime: said before
    any cell trains, not at the report.

    Raises:
        StudyConfigError: one is asked for and a package is missing.
    """
    import importlib.util

    from lightdet.deploy.runtimes import FILE_RUNTIMES

    runtimes = [str(r) for r in (study.latency.get("runtimes") or [])]
    if not any(r in FILE_RUNTIMES for r in runtimes):
        return
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise StudyConfigError(
            f"study.latency.runtimes={runtimes} needs {' and '.join(missing)}: "
            "pip install -e '.[export]'"
        )


def budget_overrides(budget: DictConfig) -> list[str]:
    """Training overrides for the budget: equal epochs (``trainer.max_epochs``), equal
    wall-clock (``trainer.max_time``, training until it runs out), or both (whichever ends
    first; the learning-rate schedule spans the epochs)."""
    epochs, minutes = budget.get("epochs"), budget.get("minutes")
    if epochs is None and minutes is None:
        raise StudyConfigError("study.budget: set epochs, minutes or both")
    overrides = []
    if epochs is not None:
        if int(epochs) < 1:
            raise StudyConfigError(f"study.budget.epochs: expected at least 1, got {epochs}")
        overrides.append(f"trainer.max_epochs={int(epochs)}")
    if minutes is not None:
        seconds = round(float(minutes) * 60)
        if seconds < 1:
            raise StudyConfigError(f"study.budget.minutes: expected more than 0, got {minutes}")
        overrides.append(f"++trainer.max_time='{clock(float(minutes))}'")
        if epochs is None:
            overrides.append("trainer.max_epochs=-1")
    return overrides


def label_of(cell: str | None, train_cfg: DictConfig) -> str:
    """A readable name for the cell's row and folder: its name, else the model's."""
    name = cell if cell is not None else str(train_cfg.model.get("name", "model"))
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def config_key(train_cfg: DictConfig) -> str:
    """A hash of everything that shapes the trained model: the resolved training config
    without where it is written and how it is tracked."""
    cfg = OmegaConf.create(OmegaConf.to_container(train_cfg, resolve=False))
    cfg.paths.output_dir = "<run>"
    cfg.task_name = "<cell>"
    body = OmegaConf.to_container(cfg, resolve=True)
    for key in ("logger", "paths"):
        body.pop(key, None)
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_result(folder: Path) -> dict | None:
    """The result a cell's folder holds, None when it has none (never finished)."""
    path = folder / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Written whole or not at all: a temporary file renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
