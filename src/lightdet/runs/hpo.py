"""A hyperparameter search run (``make hpo``, ``python -m lightdet.hpo hpo=<space>``).

With a reachable ClearML server (``backend=auto`` or ``clearml``): ClearML's optimizer with
Optuna clones a base training task. Otherwise (``local``): an Optuna study in a file, each trial a
training run in this process. Both write the best configuration, a trials table and plots.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lightdet.guard import secure_config
from lightdet.runs.train import run_training
from lightdet.search.local import run_study, trials_table, write_results
from lightdet.tracking.server import server_available
from lightdet.tracking.task import clearml_task

log = logging.getLogger(__name__)


def use_clearml(cfg: DictConfig) -> bool:
    if cfg.backend in ("local", "clearml"):
        return cfg.backend == "clearml"
    return server_available(cfg.logger.clearml, tries=1)


def compose_train(overrides: list[str]) -> DictConfig:
    """The training config with ``overrides``, inside this Hydra app."""
    return hydra.compose(config_name="train", overrides=overrides)


def run_local(cfg: DictConfig, out_dir: Path) -> dict:
    best: list = []  # [val, folder] of the best trial so far: the only one keeping last.ckpt

    def run_trial(overrides: list[str], callbacks: list, number: int) -> float | None:
        folder = out_dir / f"trial_{number:03d}"
        trial = [f"task_name={cfg.hpo.study_name}-trial{number:03d}", f"paths.output_dir={folder}"]
        value = None
        try:
            value = run_training(
                compose_train([*overrides, *trial]), callbacks, bind_hydra=False
            ).best
        finally:  # pruned and worse trials keep their best weights only (a third of the disk)
            pruned = any(getattr(c, "pruned", None) for c in callbacks)
            if value is not None and not pruned and (not best or value > best[0]):
                if best:
                    _drop_state(best[1])  # the previous best: weights only from now on
                best[:] = [value, folder]
            else:
                _drop_state(folder)
        return value

    study = run_study(cfg.hpo, run_trial)
    outputs = write_results(study, out_dir, compose_train)
    report(cfg, trials_table(study), outputs.get("plots", []))
    return outputs


def _drop_state(folder: Path) -> None:
    """Remove a finished trial's training state (``checkpoints/last.ckpt``); its best
    checkpoint (weights only) stays for evaluate, predict and export."""
    (folder / "checkpoints" / "last.ckpt").unlink(missing_ok=True)


def report(cfg: DictConfig, rows: list[list], plots: list[Path], task=None) -> None:
    """Print the table, and record it with the plots in a ClearML task for the study (a new
    one, unless ``task`` is given)."""
    log_table(rows)
    with clearml_task(cfg, task=task) as task:
        task.get_logger().report_table("hpo", "trials", iteration=0, table_plot=rows)
        for plot in plots:
            task.get_logger().report_image("hpo", plot.stem, iteration=0, local_path=str(plot))


def run_search(cfg: DictConfig) -> dict:
    """Run the study of ``cfg.hpo`` (ClearML's optimizer or a local Optuna study); returns the
    written outputs (best config, trials table, plots)."""
    secure_config(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if use_clearml(cfg):
        return run_clearml_path(cfg, out_dir)
    return run_local(cfg, out_dir)


def run_clearml_path(cfg: DictConfig, out_dir: Path) -> dict:
    """ClearML's optimizer on the server; then the same outputs as the local path."""
    from clearml import Task

    from lightdet.search.remote import run_clearml

    study = run_clearml(cfg)
    outputs = write_results(study, out_dir, compose_train)
    report(cfg, trials_table(study), outputs.get("plots", []), task=Task.current_task())
    return outputs


def log_table(rows: list[list]) -> None:
    width = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        log.info("  ".join(str(v).ljust(w) for v, w in zip(row, width)))
