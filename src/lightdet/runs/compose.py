"""The commands from Python: ``lightdet.train(overrides=[...])``, ``lightdet.evaluate(...)``.

Each composes ``conf/`` with Hydra's compose API (the same files, groups and override grammar
as the command line, guarded the same way) and calls the same run function as the CLI. There
is no Hydra app around the call: the run folder is the one the CLI would use
(``logs/<task>/runs/<time>``), created by lightdet, and Hydra configures no logging.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported on use: ``lightdet.train`` itself costs nothing
    from omegaconf import DictConfig

    from lightdet.runs.train import TrainResult

_HYDRA_OUTPUT_DIR = "${hydra:runtime.output_dir}"


def compose_config(
    config_name: str, overrides: Sequence[str] = (), *, run_dir: bool = True
) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides`` (command-line syntax), as the CLI would
    compose it; ``paths.output_dir`` becomes the run folder the CLI would use (``run_dir``:
    made now; else left as a name nothing writes to)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from lightdet import outputs
    from lightdet.cli import CONFIG_DIR  # importing it guards Hydra's composition

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        paths = OmegaConf.to_container(cfg.paths, resolve=False)
        if paths.get("output_dir") == _HYDRA_OUTPUT_DIR and not run_dir:
            cfg.paths.output_dir = str(Path(cfg.hydra.run.dir).resolve())  # not made
        elif paths.get("output_dir") == _HYDRA_OUTPUT_DIR:  # not set by an override: a new
            # folder of the CLI's pattern, never one another run took in the same second
            cfg.paths.output_dir = str(outputs.new_run_dir(Path(cfg.hydra.run.dir).resolve()))
        del cfg["hydra"]
    return cfg


def train(overrides: Sequence[str] = ()) -> TrainResult:
    """Train as ``python -m lightdet.train <overrides>`` does; returns the run's metrics.

    Example::

        import lightdet
        result = lightdet.train(["model=retinanet", "trainer.max_epochs=2"])
        result.best, result.metrics["val/map_50"], result.best_checkpoint

    Args:
        overrides: Hydra overrides, as on the command line.
    """
    from lightdet.runs.train import run_training

    return run_training(compose_config("train", overrides), bind_hydra=False)


def evaluate(
    ckpt_path: str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    split: str = "val",
    track: bool = False,
) -> dict[str, float]:
    """Score a checkpoint as ``python -m lightdet.evaluate ckpt_path=... split=...`` does.

    Quiet, and leaves nothing unless asked: no run folder, no ClearML task, no threshold
    kept beside the checkpoint, no Lightning banner; ``track=True`` records it all as the
    command does.

    Args:
        ckpt_path: a checkpoint written by training.
        overrides: Hydra overrides of ``conf/evaluate.yaml`` (``data=voc``, ``data.source.root=``).
        split: ``val`` or ``test``.
        track: a run folder with the report, a ClearML task, the threshold kept.

    Returns:
        ``{"val/map": ..., "val/map_50": ..., ...}`` (``test/...`` for the test split).
    """
    from lightdet.runs.evaluate import run_evaluation

    if split not in ("val", "test"):
        raise ValueError(f"split: expected 'val' or 'test', got {split!r}")
    from lightdet.overrides import override_value

    path = override_value(str(ckpt_path))  # quoted as the grammar needs
    args = [f"ckpt_path={path}", f"split={split}", *overrides]
    cfg = compose_config("evaluate", args, run_dir=track)
    from lightdet.runs.preflight import check_split, use_checkpoint_data

    use_checkpoint_data(cfg, overrides)  # what the command line does at composition
    check_split(cfg)
    return run_evaluation(cfg, bind_hydra=False, record=track)
