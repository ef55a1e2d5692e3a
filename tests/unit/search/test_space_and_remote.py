import math

import optuna
import pytest
from hydra import compose, initialize_config_dir

from lightdet.cli import CONFIG_DIR
from lightdet.search.remote import optimizer_kwargs
from lightdet.search.space import check_space, clearml_parameters, suggest, trial_overrides


def _hpo_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="hpo", overrides=[f"paths.root_dir={tmp_path}", *overrides])


def test_the_shipped_space_is_valid_and_samples_within_bounds(tmp_path):
    hpo = _hpo_cfg(tmp_path).hpo
    check_space(hpo.search_space)
    trial = optuna.create_study().ask()
    params = {k: suggest(trial, k, spec) for k, spec in hpo.search_space.items()}
    assert (
        0.1 <= params["model.net.focal_alpha"] <= 0.9
        and 3e-4 <= params["model.optimizer.lr"] <= 5e-3
    )
    assert trial_overrides({"model.net.focal_gamma": 1.5, "model.net.backbone": "resnet34"}) == [
        "model.net.focal_gamma=1.5",
        "model.net.backbone=resnet34",
    ]


@pytest.mark.parametrize(
    "space,message",
    [
        ({}, "empty"),
        ({"a": {"type": "normal"}}, r"a.type"),
        ({"a": {"type": "float", "low": 2, "high": 1}}, "low < high"),
        ({"a": {"type": "categorical", "choices": []}}, "a.choices"),
    ],
)
def test_malformed_spaces_name_the_key(space, message):
    with pytest.raises(ValueError, match=message):
        check_space(space)


def test_clearml_optimizer_searches_the_hydra_parameters_for_the_best_val_map(tmp_path):
    """Everything short of a server: names, objective, space, execution settings."""
    from clearml.automation import LogUniformParameterRange, UniformParameterRange
    from clearml.automation.optuna import OptimizerOptuna

    hpo = _hpo_cfg(tmp_path, "hpo.clearml.base_task_id=abc123", "hpo.n_trials=12").hpo
    kw = optimizer_kwargs(hpo)
    assert (kw["objective_metric_title"], kw["objective_metric_series"]) == ("val", "map")
    assert kw["objective_metric_sign"] == "max_global"  # the best over the run, not the last value
    assert kw["optimizer_class"] is OptimizerOptuna and kw["base_task_id"] == "abc123"
    assert (kw["execution_queue"], kw["max_number_of_concurrent_tasks"], kw["total_max_jobs"]) == (
        "default",
        2,
        12,
    )
    assert kw["time_limit_per_job"] == 60 and kw["save_top_k_tasks_only"] == 3
    params = {p.name: p for p in kw["hyper_parameters"]}
    assert set(params) == {
        "Hydra/model.net.focal_alpha",
        "Hydra/model.net.focal_gamma",
        "Hydra/model.optimizer.lr",
    }
    assert isinstance(params["Hydra/model.net.focal_alpha"], UniformParameterRange)
    lr = params["Hydra/model.optimizer.lr"]
    assert isinstance(lr, LogUniformParameterRange)  # exponents of 10
    assert lr.min_value == pytest.approx(math.log10(3e-4)) and lr.max_value == pytest.approx(
        math.log10(5e-3)
    )


def test_clearml_optimizer_needs_a_base_task(tmp_path):
    with pytest.raises(ValueError, match="hpo.clearml.base_task_id"):
        optimizer_kwargs(_hpo_cfg(tmp_path).hpo)


def test_categorical_and_int_ranges_for_clearml():
    params = clearml_parameters(
        {
            "data.batch_size": {"type": "int", "low": 4, "high": 16},
            "model.net.backbone": {"type": "categorical", "choices": ["resnet18", "resnet34"]},
        }
    )
    assert [p.name for p in params] == ["Hydra/data.batch_size", "Hydra/model.net.backbone"]
    assert params[1].values == ["resnet18", "resnet34"]


def test_clearml_trials_become_the_same_outputs_as_a_local_study(tmp_path):
    """The server path's results, from the details ClearML's optimizer returns (its documented shape)."""
    from hydra import compose as hydra_compose

    from lightdet.search.local import write_results
    from lightdet.search.remote import study_from_details

    hpo = _hpo_cfg(tmp_path, "hpo.clearml.base_task_id=abc").hpo

    def trial(task_id, alpha, gamma, lr, best):
        return {
            "task_id": task_id,
            "hyper_parameters": {
                "Hydra/model.net.focal_alpha": str(alpha),
                "Hydra/model.net.focal_gamma": str(gamma),
                "Hydra/model.optimizer.lr": str(lr),
            },
            "metrics": {
                "val/map": {"metric": "val", "variant": "map", "value": best / 2, "max_value": best}
            },
        }

    study = study_from_details(
        [
            trial("t1", 0.25, 2.0, 1e-3, 0.30),
            trial("t2", 0.5, 1.0, 2e-3, 0.45),
            {"task_id": "t3", "hyper_parameters": {}, "metrics": {}},
        ],
        hpo,
    )
    assert [t.value for t in study.trials] == [0.30, 0.45]  # max over each run; t3 never reported
    assert study.best_trial.user_attrs["task_id"] == "t2"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        outputs = write_results(
            study,
            tmp_path / "out",
            lambda o: hydra_compose("train", overrides=[f"paths.root_dir={tmp_path}", *o]),
        )
    best = (tmp_path / "out" / "best_config.yaml").read_text()
    assert "focal_alpha: 0.5" in best and "lr: 0.002" in best
    assert (tmp_path / "out" / "trials.csv").read_text().count("COMPLETE") == 2
    assert {p.name for p in outputs["plots"]} >= {
        "optimization_history.png",
        "parallel_coordinate.png",
    }
