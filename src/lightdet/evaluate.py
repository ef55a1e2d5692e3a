"""Evaluate a checkpoint: ``python -m lightdet.evaluate ckpt_path=<path> [split=test]``.

Returns the metrics (``val/map``, ``val/map_50``, ...) of one pass over the split.
"""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lightdet.cli import hydra_entry, is_global_zero
from lightdet.guard import (
    CheckpointMismatchError,
    check_stored_config,
    load_checkpoint,
    secure_config,
)
from lightdet.lightning.module import DetectionModule
from lightdet.tracking.callbacks import ClearMLReports
from lightdet.tracking.clearml import ClearMLLogger, init_task
from lightdet.train import build_datamodule


def load_module(ckpt_path: str, class_names: list[str]) -> DetectionModule:
    """The detector a checkpoint was trained as, with its weights (loaded ``weights_only``)."""
    ckpt = load_checkpoint(ckpt_path)
    hp = ckpt.get("hyper_parameters", {})
    if hp.get("class_names") != list(class_names):
        raise CheckpointMismatchError(
            f"{ckpt_path}: trained on classes {hp.get('class_names')}, "
            f"the data has {list(class_names)}"
        )
    check_stored_config(hp.get("config", {}), where=f"{ckpt_path}: hyper_parameters.config")
    net_cfg = OmegaConf.create(hp["config"]["model"]["net"])
    module = DetectionModule(
        net=instantiate(net_cfg, num_classes=len(class_names) + 1, pretrained="none"),
        class_names=class_names,
        category_map=hp.get("category_map"),
        config=hp["config"],
    )
    module.load_state_dict(ckpt["state_dict"])
    return module


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """One pass over ``cfg.split`` with the checkpoint's weights; returns the logged metrics."""
    secure_config(cfg)
    task = init_task(cfg) if is_global_zero() else None
    pl.seed_everything(cfg.seed, workers=True)
    try:
        datamodule = build_datamodule(cfg)
        module = load_module(cfg.ckpt_path, datamodule.class_names)
        trainer: pl.Trainer = instantiate(
            cfg.trainer, logger=ClearMLLogger(task), callbacks=[ClearMLReports()]
        )
        run = {"val": trainer.validate, "test": trainer.test}[cfg.split]
        (metrics,) = run(module, datamodule=datamodule)
    finally:
        if task is not None:
            task.close()
    return {k: float(v) for k, v in metrics.items()}


@hydra_entry("evaluate")
def main(cfg: DictConfig) -> dict[str, float]:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
