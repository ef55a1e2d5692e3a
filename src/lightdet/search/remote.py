"""ClearML's HyperParameterOptimizer with Optuna, over a base training task on a server.

Each trial is a clone of the base task with edited ``Hydra/...`` values, run by a
``clearml-agent`` from the execution queue; ClearML's Hydra binding applies the edits.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from lightdet.search.space import check_space, clearml_parameters

log = logging.getLogger(__name__)


def optimizer_kwargs(hpo: DictConfig) -> dict[str, Any]:
    """Arguments of ``HyperParameterOptimizer`` built from the ``hpo`` config group."""
    from clearml.automation.optuna import OptimizerOptuna

    check_space(hpo.search_space)
    title, series = hpo.objective.split("/", 1)  # metric names are stage/name: title/series
    opts = hpo.clearml
    if not opts.get("base_task_id"):
        raise ValueError(
            "hpo.clearml.base_task_id: the id of a training task on the server to clone "
            "(run `make train` once with the server configured and copy the task id)"
        )
    return {
        "base_task_id": opts.base_task_id,
        "hyper_parameters": clearml_parameters(hpo.search_space),
        "objective_metric_title": title,
        "objective_metric_series": series,
        "objective_metric_sign": "max_global",  # the best value over each run, not its last one
        "optimizer_class": OptimizerOptuna,
        "execution_queue": opts.execution_queue,
        "max_number_of_concurrent_tasks": opts.max_concurrent,
        "total_max_jobs": hpo.n_trials,
        "time_limit_per_job": opts.time_limit_per_trial_min,
        "optimization_time_limit": opts.get("total_time_limit_min"),
        "save_top_k_tasks_only": opts.top_k,
        "spawn_project": opts.get("spawn_project"),
    }


def run_clearml(cfg: DictConfig) -> list[list]:
    """Run the optimizer as its own ClearML task; returns a table of the top trials."""
    from clearml import Task
    from clearml.automation import HyperParameterOptimizer

    kwargs = optimizer_kwargs(cfg.hpo)
    Task.init(
        project_name=cfg.logger.clearml.project,
        task_name=f"HPO {cfg.hpo.study_name}",
        task_type=Task.TaskTypes.optimizer,
        reuse_last_task_id=False,
    )
    optimizer = HyperParameterOptimizer(**kwargs)
    optimizer.start()
    optimizer.wait()
    optimizer.stop()
    rows = [["task", "name", cfg.hpo.objective, *cfg.hpo.search_space]]
    for task in optimizer.get_top_experiments(cfg.hpo.clearml.top_k):
        title, series = cfg.hpo.objective.split("/", 1)
        best = task.get_reported_scalars().get(title, {}).get(series, {}).get("y", [None])
        params = task.get_parameters()
        rows.append([task.id, task.name, max(v for v in best if v is not None) if any(best) else "",
                     *(params.get(f"Hydra/{k}", "") for k in cfg.hpo.search_space)])  # fmt: skip
    return rows
