"""Pruning a trial ends its run as an early stop, after the epoch's checkpoint, and the study
records the trial as pruned."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import torch

from lightdet.search.local import OptunaPruning


def _study() -> optuna.Study:
    """A finished trial at 0.9 after one validation: a second one at 0.1 is pruned there."""
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    first = study.ask()
    first.report(0.9, step=0)
    study.tell(first, 0.9)
    return study


def _trainer(value: float) -> SimpleNamespace:
    return SimpleNamespace(
        sanity_checking=False,
        current_epoch=0,
        should_stop=False,
        callback_metrics={"val/map": torch.tensor(value)},
    )


def test_a_weak_trial_stops_after_its_validation_instead_of_raising_inside_it():
    study = _study()
    trial = study.ask()
    pruning, trainer = OptunaPruning(trial, "val/map"), _trainer(0.1)
    pruning.on_validation_end(trainer, None)  # no exception: the checkpoint callbacks run next
    assert trainer.should_stop and pruning.pruned == "epoch 0: val/map=0.1000"
    reported = study.trials[-1].intermediate_values
    assert list(reported) == [0] and abs(reported[0] - 0.1) < 1e-6  # a float32 metric


def test_a_good_trial_goes_on():
    study = _study()
    pruning, trainer = OptunaPruning(study.ask(), "val/map"), _trainer(0.95)
    pruning.on_validation_end(trainer, None)
    assert not trainer.should_stop and pruning.pruned is None


def test_the_objective_reports_a_pruned_trial_as_pruned(monkeypatch):
    """run_study's objective: the run returned (stopped early), the trial is PRUNED."""
    from omegaconf import OmegaConf

    from lightdet.search import local

    study = _study()
    monkeypatch.setattr(local, "open_study", lambda hpo: study)
    monkeypatch.setattr(local, "check_space", lambda space: None)
    hpo = OmegaConf.create(
        {
            "n_trials": 2,
            "objective": "val/map",
            "search_space": {"model.net.focal_gamma": {"type": "float", "low": 0.0, "high": 5.0}},
            "train_overrides": [],
            "study_name": "t",
        }
    )

    def run_trial(overrides, callbacks, number):
        (pruning,) = callbacks
        pruning.on_validation_end(_trainer(0.1), None)
        return 0.1  # the run's best so far: it finished, stopped early

    local.run_study(hpo, run_trial)
    assert study.trials[-1].state == optuna.trial.TrialState.PRUNED
