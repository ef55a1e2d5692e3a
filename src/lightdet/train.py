"""Train a detector: ``python -m lightdet.train model=retinanet [overrides]`` (or ``make train``).

Returns the ``optimized_metric`` (default ``val/map``, best over the run) for hyperparameter search.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightdet import outputs
from lightdet.cli import hydra_entry, is_global_zero
from lightdet.guard import check_checkpoint_fits, secure_config
from lightdet.lightning.module import DetectionModule
from lightdet.lightning.resume import ResumeCheckpoint, find_last_checkpoint
from lightdet.tracking.clearml import ClearMLLogger, init_task, record_classes

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig):
    """The datamodule with its augmentation pipelines, data prepared (generated if synthetic)."""
    datamodule = instantiate(
        cfg.data,
        train_transform=instantiate(cfg.augmentation.train),
        eval_transform=instantiate(cfg.augmentation.eval),
    )
    datamodule.prepare_data()
    return datamodule


def build_module(cfg: DictConfig, datamodule) -> DetectionModule:
    """The Lightning system; ``num_classes`` comes from the data, never from the model config."""
    return DetectionModule(
        net=instantiate(cfg.model.net, num_classes=datamodule.num_classes),
        optimizer=instantiate(cfg.model.optimizer),
        scheduler=instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None,
        class_names=datamodule.class_names,
        category_map=datamodule.category_map,
        config=OmegaConf.to_container(cfg, resolve=True),
        **_nonfinite_args(cfg),
    )


def _nonfinite_args(cfg: DictConfig) -> dict:
    policy = cfg.get("nonfinite_loss") or {}
    return {
        k: v
        for k, v in (
            ("nonfinite_loss", policy.get("action")),
            ("max_nonfinite_steps", policy.get("max_steps")),
        )  # fmt: skip
        if v is not None
    }


def _callbacks(cfg: DictConfig, ckpt_path: str | None) -> list:
    """The configured callbacks. A resumed run keeps writing checkpoints where it was stopped
    (so the best score so far carries over and ``auto`` finds them again), and always has the
    ResumeCheckpoint, which mid-epoch resume needs."""
    configs = dict(cfg.get("callbacks") or {})
    folder = Path(ckpt_path).parent if ckpt_path else None
    if folder is not None and folder.name == "checkpoints" and configs.get("model_checkpoint"):
        configs["model_checkpoint"] = OmegaConf.merge(
            configs["model_checkpoint"], {"dirpath": str(folder)}
        )
    callbacks = []
    for name, config in configs.items():
        if config is None:
            continue
        callback = instantiate(config)
        dirpath = getattr(callback, "dirpath", None)  # checkpoints: lightdet's folders only
        if dirpath and (folder is None or Path(dirpath) != folder):
            outputs.claim(dirpath, f"callbacks.{name}.dirpath", "checkpoints")
        callbacks.append(callback)
    if not any(isinstance(c, ResumeCheckpoint) for c in callbacks):
        callbacks.append(ResumeCheckpoint())
    return callbacks


def claim_output_dir(cfg: DictConfig) -> None:
    """``paths.output_dir`` must be new, empty or lightdet's. Hydra's run folder was checked
    before Hydra wrote into it (by the composition guard) and is marked by then."""
    output_dir = Path(cfg.paths.output_dir)
    hydra_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
    if hydra_dir is not None and output_dir.resolve() == Path(hydra_dir).resolve():
        outputs.mark(output_dir, "run")
    else:
        outputs.claim(output_dir, "paths.output_dir", "run")


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a file, or ``auto`` for the newest ``last.ckpt`` among the runs of this
    ``task_name`` (``${paths.log_dir}/${task_name}/runs/*/checkpoints/``), which is what a
    preempted run leaves."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "auto":
        return ckpt_path
    found = find_last_checkpoint(Path(cfg.paths.log_dir) / str(cfg.task_name) / "runs")
    log.info("ckpt_path=auto: resuming from %s", found)
    return str(found)


def train(
    cfg: DictConfig, extra_callbacks: list | None = None, bind_hydra: bool = True
) -> float | None:
    """Fit (and test, when the data has a test split); returns ``cfg.optimized_metric``.

    Args:
        cfg: the composed training config.
        extra_callbacks: added to the configured ones (hyperparameter search adds pruning).
        bind_hydra: let ClearML's Hydra binding record this run's overrides (False for runs
            composed in-process, such as search trials, whose Hydra app is another one).
    """
    secure_config(cfg)  # before anything is created from it
    claim_output_dir(cfg)
    task = init_task(cfg, bind_hydra=bind_hydra) if is_global_zero() else None
    try:  # the task is closed (its record kept) whatever happens from here on
        best, ckpt_dir = _fit(cfg, task, extra_callbacks)
    finally:
        if task is not None:
            task.close()
    log.info("%s = %s; checkpoints in %s", cfg.optimized_metric, best, ckpt_dir)
    return best


def _fit(cfg: DictConfig, task, extra_callbacks: list | None) -> tuple[float | None, str | None]:
    """Build, fit and test; returns the best ``optimized_metric`` and the checkpoint folder."""
    pl.seed_everything(cfg.seed, workers=True)  # after Task.init, which reseeds every generator
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    if task is not None:
        record_classes(task, datamodule.class_names, datamodule.category_map)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path:  # a clear error for another model or class set, before Lightning's shape dump
        check_checkpoint_fits(ckpt_path, module.state_dict(), datamodule.class_names)
    callbacks = _callbacks(cfg, ckpt_path) + list(extra_callbacks or [])
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=ClearMLLogger(task))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException:  # SIGTERM or a first Ctrl+C: checkpoint written, now exit
        _exit_interrupted(trainer)
    best = _best_score(trainer, cfg.optimized_metric)
    if cfg.get("test"):
        datamodule.setup("test")
    if cfg.get("test") and datamodule.has_split("test"):
        best_path = _best_path(trainer)
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path, weights_only=True)
    ckpt_dir = trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
    return best, ckpt_dir


def _exit_interrupted(trainer: pl.Trainer) -> None:
    """After a SIGTERM/SIGINT stop (checkpoint written by ResumeCheckpoint), exit with
    128 + the signal number, as a process killed by it would, so schedulers see a failure."""
    signum = signal.SIGTERM
    for callback in trainer.callbacks:
        if isinstance(callback, ResumeCheckpoint) and callback.signal is not None:
            signum = callback.signal
    log.warning("stopped by %s at step %d", signal.Signals(signum).name, trainer.global_step)
    raise SystemExit(128 + int(signum))


def _best_score(trainer: pl.Trainer, metric: str) -> float | None:
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.monitor == metric and ckpt.best_model_score is not None:
        return float(ckpt.best_model_score)  # best over the run, not the last value
    value = trainer.callback_metrics.get(metric)
    return float(value) if value is not None else None


def _best_path(trainer: pl.Trainer) -> str | None:
    ckpt = trainer.checkpoint_callback
    return (ckpt.best_model_path or None) if ckpt is not None else None


@hydra_entry("train")
def main(cfg: DictConfig) -> float | None:
    return train(cfg)


if __name__ == "__main__":
    main()
