"""RunResults: its history and best epoch survive a checkpoint loaded with weights_only."""

import pytest
import torch

from lightdet.lightning.results import RunResults


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    results = RunResults(str(tmp_path / "results"))
    results.history = {"train/loss": [(0, 1.5), (1, 1.2)], "val/map": [(0, 0.1), (1, 0.3)]}
    results.best = {
        "epoch": 1,
        "value": 0.3,
        "metrics": {"val/map": 0.3},
        "threshold": {"threshold": 0.4, "f1": 0.5, "precision": 0.5, "recall": 0.5},
        "folder": str(tmp_path / "results"),
    }
    torch.save({"callbacks": {"RunResults": results.state_dict()}}, tmp_path / "c.ckpt")
    state = torch.load(tmp_path / "c.ckpt", weights_only=True)["callbacks"]["RunResults"]
    resumed = RunResults(str(tmp_path / "results"))
    resumed.load_state_dict(state)
    assert resumed.history == results.history and resumed.best == results.best
    assert not resumed._improves(0.29) and resumed._improves(0.31)


class _Trainer:
    """What RunResults reads of a Trainer during fit."""

    def __init__(self):
        self.global_step, self.current_epoch, self.callback_metrics = 0, 0, {}
        self.sanity_checking, self.is_global_zero, self.checkpoint_callback = False, True, None

        class State:
            fn = "fit"

        self.state = State()


def _train(results, trainer, steps, loss=lambda s: 2.0 / (1 + s)):
    for _ in range(steps):
        trainer.global_step += 1
        trainer.callback_metrics = {"train/loss": torch.tensor(loss(trainer.global_step))}
        results.on_train_batch_end(trainer, None, None, None, 0)


def _plotted(monkeypatch, results, trainer):
    calls = []
    import lightdet.evaluation.plots as plots

    monkeypatch.setattr(plots, "plot_training_curves", lambda h, p, x="epoch": calls.append((h, x)))
    results.on_fit_end(trainer, None)
    return calls[0]


def test_a_short_run_is_drawn_by_step(tmp_path, monkeypatch):
    """A run of one epoch was one dot per curve; it is drawn by optimizer step."""
    results, trainer = RunResults(str(tmp_path / "results")), _Trainer()
    _train(results, trainer, 30)
    results.on_train_epoch_end(trainer, None)
    history, x = _plotted(monkeypatch, results, trainer)
    assert x == "step"
    assert [s for s, _ in history["train/loss"]] == list(range(1, 31))
    assert history["train/loss"][-1][1] == pytest.approx(2.0 / 31)  # float32 through a tensor
    assert len(results.history["train/loss"]) == 1  # by epoch: the one dot it was


def test_a_long_run_stays_by_epoch_and_its_steps_are_thinned(tmp_path, monkeypatch):
    from lightdet.lightning import results as module

    monkeypatch.setattr(module, "MAX_STEP_POINTS", 50)
    results, trainer = RunResults(str(tmp_path / "results")), _Trainer()
    for epoch in range(6):
        trainer.current_epoch = epoch
        _train(results, trainer, 40, loss=lambda s: 1.0)
        results.on_train_epoch_end(trainer, None)
    steps = results.step_history["train/loss"]
    assert len(steps) <= 50 and results._stride >= 4
    assert steps[-1][0] > 200 and all(v == 1.0 for _, v in steps)  # bucket means of 1.0
    history, x = _plotted(monkeypatch, results, trainer)
    assert x == "epoch" and [e for e, _ in history["train/loss"]] == list(range(6))
