"""DetectionModule's handling of non-finite losses, on a real Trainer with a stand-in net."""

import math
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from lightdet.data.dataset import collate_detection
from lightdet.lightning.module import DetectionModule


class LossNet(nn.Module):
    """Returns a loss per batch: NaN or inf for the batches whose first image id is listed."""

    def __init__(self, bad_ids: dict[int, float]):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.bad_ids = bad_ids

    def forward(self, images, targets=None):
        first = int(targets[0]["image_id"])
        value = self.bad_ids.get(first, 1.0)
        return {"loss_classifier": self.weight.sum() * value, "bbox_regression": self.weight.sum()}


def _batches(n: int):
    samples = [(torch.zeros(3, 8, 8), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0,
               dtype=torch.int64), "image_id": torch.tensor(i)}) for i in range(n)]  # fmt: skip
    return DataLoader(samples, batch_size=2, collate_fn=collate_detection)


def _fit(net, **kwargs):
    module = DetectionModule(net, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dataloaders=_batches(8))
    return trainer, module


def test_a_nan_step_is_skipped_counted_and_leaves_the_weights_alone():
    net = LossNet({2: math.nan, 6: math.inf})  # batches 1 and 3 of 4
    trainer, module = _fit(net)
    assert trainer.global_step == 4  # Lightning counts the skipped batches as steps
    assert module.nonfinite_steps == 2
    assert torch.isfinite(net.weight).all()
    assert net.weight.item() == pytest.approx(1 - 2 * 0.1 * 2)  # only two SGD steps applied


def test_stop_names_the_step_and_the_image_ids():
    with pytest.raises(FloatingPointError, match=r"non-finite training loss at step 1 \(epoch 0\): "
                       r"loss_classifier=nan, bbox_regression=0.8; image ids \[2, 3\]"):  # fmt: skip
        _fit(LossNet({2: math.nan}), nonfinite_loss="stop")


def test_skipping_stops_once_too_many_steps_were_skipped():
    with pytest.raises(FloatingPointError, match="more than max_nonfinite_steps=1 skipped"):
        _fit(LossNet({0: math.nan, 4: math.nan}), max_nonfinite_steps=1)


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="nonfinite_loss: expected 'skip' or 'stop'"):
        DetectionModule(LossNet({}), nonfinite_loss="ignore")
