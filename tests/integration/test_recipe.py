"""The recipe switches in a real training run: accumulation and the lr for the effective batch,
the backbone's rate, frozen stages, and a wall-clock budget whose schedule completes."""

import time

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from lightdet.runs.train import run_training
from tests.conftest import compose_train


class Steps(Callback):
    """Optimizer steps, learning rates and the weights before training."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []
        self.initial: dict[str, torch.Tensor] = {}
        self.batches = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.initial = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}
        self.base = [g["initial_lr"] for g in trainer.optimizers[0].param_groups]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


@pytest.mark.slow
def test_accumulation_lr_scaling_backbone_rate_and_frozen_stages(tmp_path, tiny_shapes):
    steps = Steps()
    cfg = compose_train(
        tmp_path,
        f"data.source.root={tiny_shapes}",
        "test=false",
        "trainer.limit_train_batches=4",
        "optimization.nominal_batch_size=8",
        "optimization.lr_reference_batch_size=4",
        "optimization.backbone_lr_mult=0.1",
        "model.net.trainable_backbone_layers=2",
        "model.optimizer.lr=0.001",
    )
    run_training(cfg, extra_callbacks=[steps])
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    # batch 4 x 1 process x 2 accumulated = 8: 4 batches make 2 optimizer steps
    assert steps.batches == 4 and ckpt["global_step"] == 2
    # lr 0.001 stated for a batch of 4, trained with 8: x 2 (linear); the trunk at 0.1 x that
    assert steps.base == pytest.approx([0.0002, 0.002])
    trained = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    frozen = [
        k
        for k in trained
        if k.startswith(("backbone.body.conv1", "backbone.body.layer1.", "backbone.body.layer2."))
    ]
    moved = [k for k in trained if k.startswith("backbone.body.layer4.") and "weight" in k]
    assert frozen and moved
    assert all(
        torch.equal(trained[k], steps.initial[k])
        for k in frozen
        if "running" not in k and "num_batches" not in k
    )
    assert any(not torch.equal(trained[k], steps.initial[k]) for k in moved)


@pytest.mark.slow
def test_a_wall_clock_budget_stops_on_time_with_its_schedule_complete(tmp_path, tiny_shapes):
    steps = Steps()
    cfg = compose_train(
        tmp_path,
        f"data.source.root={tiny_shapes}",
        "test=false",
        "budget_minutes=0.4",
        "model.scheduler.warmup_steps=2",
        "trainer.limit_val_batches=1",
    )
    started = time.monotonic()
    result = run_training(cfg, extra_callbacks=[steps])
    took = time.monotonic() - started
    assert result.epochs >= 2  # epochs until the time ran out, not trainer.max_epochs (1)
    # issue 34: the whole run within the budget (the setup, the last validation and the
    # summary came on top of it: BUDGET=2 took about 3 minutes); a batch may still overrun
    assert 16 <= took < 24 + 4, took
    peak = max(lr for (lr,) in steps.lrs)
    # the cosine came most of the way down with the time (the last validation is budgeted
    # now, so the Timer that the schedule reads is shortened as the run measures it)
    assert steps.lrs[-1][0] < 0.25 * peak


@pytest.mark.slow
def test_early_stopping_ends_the_run_when_val_map_stops_improving(tmp_path, tiny_shapes):
    cfg = compose_train(
        tmp_path,
        f"data.source.root={tiny_shapes}",
        "test=false",
        "trainer.max_epochs=6",
        "callbacks.early_stopping.enabled=true",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=2.0",
    )
    result = run_training(cfg)  # no gain can reach 2.0 mAP: the second validation stops it
    assert result.epochs == 2  # epochs 0 and 1 trained, not 6
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4  # 2 epochs x 2 batches
    assert result.best_checkpoint is not None and result.best is not None  # ended normally
