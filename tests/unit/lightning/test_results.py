"""RunResults: its history and best epoch survive a checkpoint loaded with weights_only."""

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
