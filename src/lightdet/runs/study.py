"""A study (``make compare``, ``make study STUDY=focal``): a Hydra multirun whose jobs each
train one cell, then one report over all of them.

A job (:func:`run_cell`) composes the training config from the command line's training
overrides, the cell's own and the study's budget, and trains it in
``<study.dir>/cells/<label>-<key>/`` (or scores ``study.checkpoints``' file for it). The key
hashes the composed config: a cell that finished with the same config is reused, not
retrained, and one stopped midway resumes from its ``last.ckpt``. Hydra's launcher runs the
jobs (one after another by default; side by side with ``hydra/launcher=joblib``, on SLURM
with Submitit): nothing here schedules them. When all are done, Hydra calls
:class:`StudyReport`, which measures each model's latency (:mod:`lightdet.studies.latency`,
in this process's device, one model at a time) and writes the table and plots.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lightdet.overrides import override_value
from lightdet.studies.spec import (
    budget_overrides,
    cell_overrides,
    check_runtime_packages,
    checkpoint_of,
    config_key,
    label_of,
    read_result,
    training_overrides,
    write_json,
)

log = logging.getLogger(__name__)


def run_cell(cfg: DictConfig) -> dict:
    """Train (or reuse, or score the given checkpoint of) this job's cell; returns its result,
    also written to ``result.json`` in the cell's folder."""
    study, cell = cfg.study, cfg.get("cell")
    check_runtime_packages(study)
    user = [
        *map(str, study.get("base") or []),
        *training_overrides(HydraConfig.get().overrides.task),
    ]
    checkpoint = checkpoint_of(study, cell)
    if checkpoint is not None:
        results = [_checkpoint_cell(study, cell, checkpoint, user)]
    else:
        overrides = [*user, *cell_overrides(study, cell)]
        results = [_trained_cell(study, cell, [*overrides, *seed]) for seed in _seeds(cfg, study)]
    write_json(
        Path(HydraConfig.get().runtime.output_dir) / "cell.json",
        {"folder": results[0]["folder"], "folders": [r["folder"] for r in results]},
    )
    return results[0]


def _seeds(cfg: DictConfig, study: DictConfig) -> list[list[str]]:
    """The seed override of each of the cell's ``study.seeds`` runs: none for one run (the
    configured seed, as before seeds were repeated: its finished cells are reused), else the
    configured seed and the ones after it."""
    count = int(study.get("seeds") or 1)
    if count == 1:
        return [[]]
    return [[f"seed={int(cfg.seed) + i}"] for i in range(count)]


def _trained_cell(study: DictConfig, cell: str | None, overrides: list[str]) -> dict:
    from lightdet.runs.train import run_training

    overrides = [*overrides, *budget_overrides(study.budget), f"test={bool(study.get('test'))}"]
    probe = hydra.compose(config_name="train", overrides=overrides)
    label, key = label_of(cell, probe), config_key(probe)
    folder = Path(study.dir) / "cells" / f"{label}-{key[:8]}"
    previous = read_result(folder)
    if previous and previous.get("status") == "finished" and Path(previous["checkpoint"]).is_file():
        log.info(
            "cell %s: reused (finished %s, key %s): %s",
            label,
            previous.get("finished_at"),
            key,
            folder,
        )
        print(f"cell {label}: finished before with this config, reused ({folder})", flush=True)
        return previous
    run_dir = folder / "run"
    task_name = f"{study.name}-{label}"
    if int(study.get("seeds") or 1) > 1:  # the seed's run among its cell's
        task_name += f"-seed{probe.seed}"
    final = [
        *overrides,
        f"task_name={task_name}",
        f"paths.output_dir={override_value(str(run_dir))}",
    ]
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():  # stopped midway before: go on from where it was
        final.append(f"ckpt_path={override_value(str(last))}")
        print(f"cell {label}: resuming from {last}", flush=True)
    train_cfg = hydra.compose(config_name="train", overrides=final)
    result = _base_result(study, cell, label, key, folder, overrides, train_cfg)
    started = time.monotonic()
    try:
        trained = run_training(train_cfg, bind_hydra=False)
    except Exception as err:  # one model failing must not lose the others: recorded, reported
        log.exception("cell %s failed", label)
        return _finish(
            folder, {**result, "status": "failed", "error": f"{type(err).__name__}: {err}"}
        )
    if not trained.best_checkpoint:
        return _finish(
            folder, {**result, "status": "failed", "error": "no best checkpoint written"}
        )
    result.update(
        status="finished",
        checkpoint=trained.best_checkpoint,
        best_epoch=trained.best_epoch,
        metrics={**trained.best_metrics, "best": trained.best},
        task_id=trained.task_id,
        task_url=trained.task_url,
        train_seconds=time.monotonic() - started,
        epochs=trained.epochs,
        steps=trained.steps,
        images=_val_images(train_cfg, study),
    )
    return _finish(folder, result)


def _checkpoint_cell(study: DictConfig, cell: str, checkpoint: str, user: list[str]) -> dict:
    from lightdet.runs.evaluate import run_evaluation
    from lightdet.runs.preflight import use_checkpoint_data
    from lightdet.studies.spec import StudyConfigError

    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise StudyConfigError(f"study.checkpoints: {cell}={checkpoint}: no such file")
    stat = path.stat()
    user = _for_evaluation(user)
    overrides = [*user, f"ckpt_path={override_value(str(path))}", "split=val"]
    probe = hydra.compose(config_name="evaluate", overrides=overrides)
    key = config_key(probe)[:6] + f"{stat.st_size:x}{stat.st_mtime_ns:x}"[-6:]
    folder = Path(study.dir) / "cells" / f"{label_of(cell, probe)}-{key}"
    previous = read_result(folder)
    if previous and previous.get("status") == "finished":
        print(f"cell {cell}: {path} scored before, reused ({folder})", flush=True)
        return previous
    final = [
        *overrides,
        f"task_name={study.name}-{cell}",
        f"paths.output_dir={override_value(str(folder / 'eval'))}",
    ]
    eval_cfg = hydra.compose(config_name="evaluate", overrides=final)
    # scored (and its latency images taken) on the data it was trained on, as make eval does,
    # not on the study's default data: the command line's data.<key>=... on top
    use_checkpoint_data(eval_cfg, user)
    result = _base_result(study, cell, cell, key, folder, overrides, eval_cfg)
    metrics = run_evaluation(eval_cfg, bind_hydra=False)
    result.update(
        status="finished",
        checkpoint=str(path),
        metrics=metrics,
        images=_val_images(eval_cfg, study),
        model=None,
        backbone=None,
    )
    return _finish(folder, result)


def _for_evaluation(overrides: list[str]) -> list[str]:
    """The overrides the evaluation config takes (data, trainer, paths...): a checkpoint is
    scored as it was trained; training-only keys (model, optimizer, callbacks) are left out,
    and said."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = set(hydra.compose(config_name="evaluate", overrides=["ckpt_path=x"]).keys())
    keys |= {"data", "data_policy", "augmentation", "trainer", "logger", "paths"}  # its groups
    kept, left = [], []
    for override in OverridesParser.create().parse_overrides(overrides):
        (kept if override.key_or_group.split(".")[0] in keys else left).append(override.input_line)
    if left:
        print(f"checkpoint cells are scored, not trained: left out {' '.join(left)}", flush=True)
    return kept


def _base_result(study, cell, label, key, folder, overrides, cfg) -> dict:
    keys = [k for k in ((study.get("heatmap") or {}).get(a) for a in ("x", "y")) if k]
    settings = {k: _setting(OmegaConf.select(cfg, k, default=None)) for k in keys}
    return {
        "study": study.name,
        "cell": cell,
        "label": label,
        "key": key,
        "folder": str(folder),
        "overrides": overrides,
        "settings": settings,
        "status": "running",
        "model": OmegaConf.select(cfg, "model.name", default=None),
        "backbone": OmegaConf.select(cfg, "model.net.backbone", default=None)
        or OmegaConf.select(cfg, "model.backbone", default=None),
        "budget": OmegaConf.to_container(study.budget),
        "seed": OmegaConf.select(cfg, "seed", default=None),
        "warmup_steps": OmegaConf.select(cfg, "model.scheduler.warmup_steps", default=None),
        "metrics": {},
    }


def _setting(value) -> str | None:
    if value is None:
        return None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return str(value)


def _finish(folder: Path, result: dict) -> dict:
    result["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(folder / "result.json", result)
    if result["status"] != "finished":
        print(f"cell {result['label']}: FAILED: {result.get('error')}", flush=True)
    return result


def _val_images(cfg: DictConfig, study: DictConfig) -> list[str]:
    """The first validation images, for the latency measurement."""
    from lightdet.runs.build import build_datamodule

    datamodule = build_datamodule(cfg)
    datamodule.setup("validate")
    records = datamodule.datasets["val"].records[: int(study.latency.images)]
    return [str(r.image_path) for r in records]
