"""EMA of the weights (callbacks.ema): validation and the best checkpoint use the average, the
checkpoint keeps the raw weights, and resuming restores both exactly."""

import math

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from lightdet.runs.train import run_training
from tests.conftest import compose_train

EMA = [
    "callbacks.ema.enabled=true",
    "callbacks.ema.decay=0.9",
    "callbacks.ema.tau=2",
    "augmentation=none",
    "test=false",
    "trainer.limit_val_batches=1",
]
PROBE = "net.head.classification_head.cls_logits.weight"


class WeightProbe(Callback):
    """The probed weight after every optimizer step (raw) and inside every validation."""

    def __init__(self) -> None:
        self.raw: list[torch.Tensor] = []
        self.validated: list[tuple[int, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.raw.append(pl_module.state_dict()[PROBE].detach().clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking and batch_idx == 0:
            step = trainer.global_step
            self.validated.append((step, pl_module.state_dict()[PROBE].detach().clone()))


def _ema(raws: list[torch.Tensor], decay: float, tau: float) -> torch.Tensor:
    """The ramped EMA computed by hand: the first update copies, the n-th moves by 1 - d(n)."""
    average = raws[0].clone()
    for n, raw in enumerate(raws[1:], start=1):
        d = decay * (1 - math.exp(-n / tau))
        average = average * d + raw * (1 - d)
    return average


@pytest.mark.slow
def test_validation_and_the_best_checkpoint_use_the_average(tmp_path, tiny_shapes):
    probe = WeightProbe()
    cfg = compose_train(tmp_path, f"data.source.root={tiny_shapes}", "trainer.max_epochs=2", *EMA)
    result = run_training(cfg, extra_callbacks=[probe])
    assert len(probe.raw) == 4 and len(probe.validated) == 2  # 2 steps per epoch, 2 validations
    for step, validated in probe.validated:
        expected = _ema(probe.raw[:step], 0.9, 2)
        torch.testing.assert_close(validated, expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(validated, probe.raw[step - 1])  # not the raw weights
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    torch.testing.assert_close(
        last["state_dict"][PROBE], _ema(probe.raw, 0.9, 2), rtol=1e-5, atol=1e-6
    )
    assert torch.equal(last["current_model_state"][PROBE], probe.raw[-1])  # raw kept to resume
    assert int(last["averaging_state"]["n_averaged"]) == 4
    best = torch.load(result.best_checkpoint, weights_only=True)
    assert "current_model_state" not in best  # weights only: the average and nothing else
    epoch = best["epoch"]
    assert torch.equal(best["state_dict"][PROBE], probe.validated[epoch][1])


class StopAt(Callback):
    """A preemption as SIGTERM makes it (stop after this batch, checkpoint, exit): after a
    training step, or inside the first validation (where the module holds the average)."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer._signal_connector.received_sigterm = True

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        # after the first of two batches: Lightning stops a validation only before its last
        if self.step is None and not trainer.sanity_checking and batch_idx == 0:
            trainer._signal_connector.received_sigterm = True


@pytest.mark.slow
def test_a_stop_inside_a_validation_saves_the_raw_weights_and_the_average_apart(
    tmp_path, tiny_shapes
):
    """Inside a validation the module holds the average (the raw weights are parked in the
    averaged model): the checkpoint written there must still put each in its place."""
    probe = WeightProbe()
    cfg = compose_train(
        tmp_path,
        f"data.source.root={tiny_shapes}",
        "trainer.max_epochs=2",
        *EMA,
        "trainer.limit_val_batches=2",
    )
    with pytest.raises(SystemExit) as stopped_by:
        run_training(cfg, extra_callbacks=[probe, StopAt(None)])
    assert stopped_by.value.code == 143
    saved = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert (
        saved["global_step"] == 2 and saved["callbacks"]["ResumeCheckpoint"]["pending_validation"]
    )
    assert torch.equal(saved["current_model_state"][PROBE], probe.raw[-1])
    torch.testing.assert_close(
        saved["state_dict"][PROBE], _ema(probe.raw, 0.9, 2), rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_resume_restores_the_average_exactly(tmp_path, tiny_shapes):
    data = [
        f"data.source.root={tiny_shapes}",
        "trainer.max_epochs=2",
        *EMA,
        "trainer.limit_val_batches=2",
    ]
    straight = compose_train(tmp_path / "a", *data)
    run_training(straight)
    stopped = compose_train(tmp_path / "b", *data)
    with pytest.raises(SystemExit) as stopped_by:  # SIGTERM mid-way through the second epoch
        run_training(stopped, extra_callbacks=[StopAt(3)])
    assert stopped_by.value.code == 143
    last_b = tmp_path / "b/run/checkpoints/last.ckpt"
    assert torch.load(last_b, weights_only=True)["global_step"] == 3
    resumed = compose_train(tmp_path / "c", *data, f"ckpt_path={last_b}")
    run_training(resumed)
    a = torch.load(tmp_path / "a/run/checkpoints/last.ckpt", weights_only=True)
    c = torch.load(last_b, weights_only=True)  # the resumed run writes into its folder
    assert (a["global_step"], c["global_step"]) == (4, 4)
    for key in ("state_dict", "current_model_state"):  # the average, and the raw weights
        assert a[key].keys() == c[key].keys()
        different = [k for k in a[key] if not torch.equal(a[key][k], c[key][k])]
        assert different == [], (key, different[:3])
    assert int(c["averaging_state"]["n_averaged"]) == 4
    assert not torch.equal(c["state_dict"][PROBE], c["current_model_state"][PROBE])
