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
    samples = [
        (
            torch.zeros(3, 8, 8),
            {
                "boxes": torch.zeros(0, 4),
                "labels": torch.zeros(0, dtype=torch.int64),
                "image_id": torch.tensor(i),
            },
        )
        for i in range(n)
    ]
    return DataLoader(samples, batch_size=2, collate_fn=collate_detection)


def _fit(net, **kwargs):
    module = DetectionModule(net, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
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
    with pytest.raises(
        FloatingPointError,
        match=r"non-finite training loss at step 1 \(epoch 0\): "
        r"loss_classifier=nan, bbox_regression=0.8; image ids \[2, 3\]",
    ):
        _fit(LossNet({2: math.nan}), nonfinite_loss="stop")


def test_skipping_stops_once_too_many_steps_were_skipped():
    with pytest.raises(FloatingPointError, match="more than max_nonfinite_steps=1 skipped"):
        _fit(LossNet({0: math.nan, 4: math.nan}), max_nonfinite_steps=1)


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="nonfinite_loss: expected 'skip' or 'stop'"):
        DetectionModule(LossNet({}), nonfinite_loss="ignore")


class OracleNet(nn.Module):
    """Eval mode: returns each image's ground truth as detections (score 1), read from the
    ``truth`` dict by image size; a NaN box is added for the images listed in ``nan_for``."""

    def __init__(self, truth: dict[int, dict], nan_for: tuple[int, ...] = ()):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)
        self.truth, self.nan_for = truth, nan_for

    def forward(self, images, targets=None):
        if targets is not None:  # train mode: a loss
            return {"loss_classifier": self.weight.sum()}
        outs = []
        for image in images:
            key = int(image[0, 0, 0] * 255)  # the image id, written into the first pixel
            t = self.truth[key]
            boxes, labels = t["boxes"], t["labels"]
            if key in self.nan_for:
                boxes = torch.cat([boxes, torch.full((1, 4), float("nan"))])
                labels = torch.cat([labels, torch.ones(1, dtype=torch.int64)])
            outs.append({"boxes": boxes, "labels": labels, "scores": torch.ones(len(labels))})
        return outs


def _eval_samples(n: int):
    samples, truth = [], {}
    for i in range(n):
        image = torch.zeros(3, 32, 32)
        image[0, 0, 0] = i / 255
        boxes = torch.tensor([[2.0 + i, 3.0, 20.0, 25.0]])
        labels = torch.tensor([1 + i % 2])
        truth[i] = {"boxes": boxes, "labels": labels}
        target = {
            "boxes": boxes,
            "labels": labels,
            "iscrowd": torch.zeros(1, dtype=torch.bool),
            "image_id": torch.tensor(i),
        }
        samples.append((image, target))
    return DataLoader(samples, batch_size=2, collate_fn=collate_detection), truth


def test_validation_logs_stage_metric_names_and_scores_the_predictions():
    """Perfect detections score mAP 1 under every ``val/`` name; a NaN box is dropped and
    counted, not scored; the evaluation step hands its (cleaned) predictions to callbacks."""
    loader, truth = _eval_samples(4)
    seen = []

    class Keep(pl.Callback):
        def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, *a):
            seen.extend(outputs)

    module = DetectionModule(OracleNet(truth, nan_for=(1,)), class_names=["cat", "dog"])
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Keep()],
    )
    (metrics,) = trainer.validate(module, dataloaders=loader)
    assert metrics["val/map"] == pytest.approx(1.0) and metrics["val/map_50"] == pytest.approx(1.0)
    assert metrics["val/ap_cat"] == pytest.approx(1.0) and metrics["val/ap_dog"] == pytest.approx(
        1.0
    )
    assert metrics["val/dropped_predictions"] == 1.0
    assert {"val/map_75", "val/mar_100"} <= set(metrics)
    assert not any(k.startswith("test/") for k in metrics)
    assert [len(p["boxes"]) for p in seen] == [1, 1, 1, 1]  # the NaN box is not passed on
    report = module.last_report  # the pass's one report: the logged numbers are its own
    assert report.split == "val" and report.confusion.diagonal()[1:].tolist() == [2, 2]
    assert report.coco.stats[0] == metrics["val/map"] and len(module.recorder.images) == 4


def test_test_stage_uses_its_own_names():
    loader, truth = _eval_samples(2)
    module = DetectionModule(OracleNet(truth), class_names=["cat", "dog"])
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    (metrics,) = trainer.test(module, dataloaders=loader)
    assert metrics["test/map"] == pytest.approx(1.0)
    assert not any(k.startswith("val/") for k in metrics)


def test_optimizer_gets_trainable_parameters_and_scheduler_steps_per_batch():
    """The scheduler is built with the run's total optimizer steps and stepped every batch."""
    from lightdet.lightning.schedulers import warmup_cosine

    rates = []

    class Rates(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = DetectionModule(
        OracleNet({}),
        optimizer=partial(torch.optim.SGD, lr=0.5),
        scheduler=partial(warmup_cosine, warmup_steps=2),
    )
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Rates()],
    )
    trainer.fit(module, train_dataloaders=_batches(8))  # 4 batches x 2 epochs
    (optimizer,) = trainer.optimizers
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == 1 and params[0] is module.net.weight  # the frozen one is left out
    (config,) = trainer.lr_scheduler_configs
    assert config.interval == "step"
    reference = warmup_cosine(
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5), total_steps=8, warmup_steps=2
    )
    expected = [0.5 * reference.lr_lambdas[0](step) for step in range(8)]
    assert rates == pytest.approx(expected)  # total_steps=8, one scheduler step per batch
    assert len(set(rates)) == 8


def test_a_module_without_optimizer_only_evaluates():
    module = DetectionModule(OracleNet({}))
    with pytest.raises(RuntimeError, match="no optimizer given"):
        module.configure_optimizers()


class GradNet(LossNet):
    """A finite loss whose gradient is NaN for the listed batches (sqrt at 0, as a focal loss
    with gamma < 1 meets a certain prediction)."""

    def forward(self, images, targets=None):
        loss = self.weight.sum()
        if int(targets[0]["image_id"]) in self.bad_ids:
            zero = self.weight - self.weight.detach()  # 0, with a gradient
            loss = loss + (torch.sqrt(zero.abs()) * 0).sum()  # value 0, gradient NaN
        return {"loss_classifier": loss}


def test_a_huge_finite_gradient_is_not_taken_for_a_nan_one():
    """A gradient whose square overflows float32 (a check through the gradients' norm would
    call it infinite) is finite: the step is taken."""
    net = LossNet({2: 1e30})  # batch 1 of 4: gradient 1e30 + 1, its square overflows
    trainer, module = _fit(net)
    assert module.nonfinite_steps == 0
    assert net.weight.item() == pytest.approx(1 - 0.1 * (1e30 + 1) - 2 * 0.1 * 2, rel=1e-6)


def test_a_nan_gradient_from_a_finite_loss_is_skipped_and_counted():
    net = GradNet({2: 0.0})  # batch 1 of 4: loss finite, gradient NaN
    trainer, module = _fit(net)
    assert module.nonfinite_steps == 1
    assert torch.isfinite(net.weight).all()
    assert net.weight.item() == pytest.approx(1 - 3 * 0.1)  # three SGD steps of gradient 1
    with pytest.raises(
        FloatingPointError,
        match=r"non-finite gradient at step 1 \(epoch 0\): "
        r"1 parameters, first net.weight; image ids \[2, 3\]",
    ):
        _fit(GradNet({2: 0.0}), nonfinite_loss="stop")


class NaNNet(OracleNet):
    """Every output NaN: the boxes of a model whose weights went NaN."""

    def forward(self, images, targets=None):
        outs = super().forward(images, targets)
        if targets is None:
            for out in outs:
                out["boxes"] = torch.full_like(out["boxes"], float("nan"))
        return outs


@pytest.mark.parametrize("net", ["some_nan", "all_nan"])
def test_evaluation_says_when_outputs_are_not_finite_and_fails_when_nothing_finite_remains(net):
    """``make eval`` of a model whose every output is NaN must not print a report of a model
    that finds nothing: the pass warns with the count, and the command fails before writing
    anything (runs.evaluate._check_finite); with some finite outputs it warns and goes on."""
    from lightdet.runs.evaluate import _check_finite
    from lightdet.runs.predict import NonFiniteOutputError

    loader, truth = _eval_samples(4)
    model = OracleNet(truth, nan_for=(1,)) if net == "some_nan" else NaNNet(truth)
    module = DetectionModule(model, class_names=["cat", "dog"])
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    with pytest.warns(UserWarning, match=r"val: (1|4) detections with NaN/inf boxes"):
        (metrics,) = trainer.validate(module, dataloaders=loader)
    if net == "some_nan":
        assert module.last_dropped == 1 and metrics["val/map"] == pytest.approx(1.0)
        _check_finite(module)  # goes on
    else:
        assert module.last_dropped == 4 and module.last_report.detections == []
        with pytest.raises(NonFiniteOutputError, match=r"evaluate: no detection left.*4 dropped"):
            _check_finite(module)
