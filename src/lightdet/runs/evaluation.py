"""An evaluation run: one pass of a checkpoint's detector over a split; one ClearML task."""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from lightdet.guard import secure_config
from lightdet.runs.build import build_datamodule, module_from_checkpoint
from lightdet.runs.training import scalars
from lightdet.tracking.callbacks import ClearMLReports
from lightdet.tracking.clearml import ClearMLLogger
from lightdet.tracking.task import clearml_task


def run_evaluation(cfg: DictConfig, bind_hydra: bool = True) -> dict[str, float]:
    """Score ``cfg.ckpt_path`` on ``cfg.split`` (``val`` or ``test``) of ``cfg.data``; returns
    the logged metrics (``val/map``, ``val/map_50``, per-class AP, ...)."""
    secure_config(cfg)
    with clearml_task(cfg, bind_hydra=bind_hydra) as task:
        pl.seed_everything(cfg.seed, workers=True)
        datamodule = build_datamodule(cfg)
        module = module_from_checkpoint(cfg.ckpt_path, datamodule.class_names)
        trainer: pl.Trainer = instantiate(
            cfg.trainer, logger=ClearMLLogger(task), callbacks=[ClearMLReports()]
        )
        run = {"val": trainer.validate, "test": trainer.test}[cfg.split]
        (metrics,) = run(module, datamodule=datamodule)
    return scalars(metrics)
