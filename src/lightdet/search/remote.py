"""ClearML's HyperParameterOptimizer with Optuna, over a base training task on a server.

Each trial is a clone of the base task with edited ``Hydra/...`` values, run by a
``clearml-agent`` from the execution queue; ClearML's Hydra binding applies the edits.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from omegaconf import DictConfig

from lightdet.overrides import HYDRA_SECTION
from lightdet.search.space import check_space, clearml_parameters, distribution, trial_overrides

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
        # required by OptimizerOptuna (without it the optimizer is never built); None: each
        # trial runs to its own end, not to an iteration budget
        "max_iteration_per_job": None,
        "time_limit_per_job": opts.time_limit_per_trial_min,
        "optimization_time_limit": opts.get("total_time_limit_min"),
        "save_top_k_tasks_only": opts.top_k,
        "spawn_project": opts.get("spawn_project"),
        # handed to OptimizerOptuna: Optuna 5 changed its default sampler, so the sampler and
        # its seed are chosen here, not by the library version installed
        "optuna_sampler": optuna.samplers.TPESampler(seed=hpo.get("sampler_seed")),
        "pool_period_min": opts.get("poll_period_min", 2.0),
    }


def run_clearml(cfg: DictConfig) -> optuna.Study:
    """Run the optimizer as its own ClearML task (left open for the results to be reported to);
    returns its finished trials as an Optuna study."""
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
    # its progress reporter sleeps 5 minutes between reports and is joined, not woken, once
    # the trials are done: `make hpo` sat up to 5 minutes after its last trial (measured on the
    # loopback server). Reporting as often as it polls ends it within one poll period.
    optimizer.set_report_period(kwargs["pool_period_min"])
    optimizer.start()
    optimizer.wait()
    optimizer.stop()
    details = optimizer.get_top_experiments_details(top_k=cfg.hpo.n_trials, only_completed=True)
    return study_from_details(details, cfg.hpo)


def study_from_details(details: list[dict], hpo: DictConfig) -> optuna.Study:
    """ClearML's trials (``get_top_experiments_details``) as an in-memory Optuna study, so the
    server path writes the same table, best configuration and plots as the local one."""
    distributions = {k: distribution(spec) for k, spec in hpo.search_space.items()}
    study = optuna.create_study(direction="maximize", study_name=hpo.study_name)
    for trial in details:
        metric = trial.get("metrics", {}).get(hpo.objective)
        value = metric.get("max_value") if metric else None  # the best over the run
        if value is None:
            continue
        params = {
            key: _parse(trial["hyper_parameters"][f"{HYDRA_SECTION}/{key}"], spec)
            for key, spec in hpo.search_space.items()
        }
        overrides = trial_overrides(params, hpo.train_overrides)
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(value),
                user_attrs={"overrides": overrides, "task_id": trial.get("task_id")},
            )
        )
    return study


def _parse(text: str, spec) -> Any:
    """ClearML stores parameters as text."""
    if spec["type"] == "int":
        return int(float(text))
    if spec["type"] == "float":
        return float(text)
    return next(c for c in spec["choices"] if str(c) == str(text))
