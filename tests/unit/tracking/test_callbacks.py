"""The reporting callbacks act on global rank 0 only, and only with a ClearML logger."""

from pathlib import Path
from types import SimpleNamespace

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lightdet.tracking.callbacks import ClearMLModelRegistry, ClearMLReports, _clearml
from lightdet.tracking.clearml import ClearMLLogger


class ExplodingTask:
    """Any use of the task on a rank that must not report fails the test."""

    id = name = "t"

    def __getattr__(self, name):
        raise AssertionError(f"task.{name} used on a non-reporting rank")


def _trainer(rank_zero: bool, loggers):
    return SimpleNamespace(
        is_global_zero=rank_zero,
        loggers=loggers,
        sanity_checking=False,
        datamodule=SimpleNamespace(),
        checkpoint_callback=None,
        global_step=3,
    )


def test_only_global_rank_zero_with_a_clearml_logger_reports():
    logger = ClearMLLogger(ExplodingTask())
    assert _clearml(_trainer(True, [logger])) is logger
    assert _clearml(_trainer(False, [logger])) is None  # other DDP ranks
    assert _clearml(_trainer(True, [])) is None  # no ClearML logger


def test_callbacks_do_nothing_on_other_ranks():
    trainer = _trainer(False, [ClearMLLogger(ExplodingTask())])
    module = SimpleNamespace(
        last_report=None,
        class_names=["a"],
        hparams={},
    )
    reports = ClearMLReports()
    reports.on_fit_start(trainer, module)
    reports.on_validation_batch_end(trainer, module, [], ([], []), 0)
    reports.on_validation_end(trainer, module)
    registry = ClearMLModelRegistry()
    registry.on_fit_end(trainer, module)
    assert reports._debug_batch is None


class ScoredModule(pl.LightningModule):
    """Logs a given ``val/map`` per epoch (exact in float32); trains one parameter."""

    def __init__(self, scores):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.scores = scores

    def training_step(self, batch, batch_idx):
        return (self.weight * batch).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/map", self.scores[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_registry_registers_each_new_best_before_the_next_epoch_trains(tmp_path, monkeypatch):
    registered = []  # (kind, checkpoint file, global step at registration, val/map then)
    monkeypatch.setattr(
        ClearMLModelRegistry,
        "_register",
        lambda self, trainer, module, kind, path: registered.append(
            (kind, Path(path).name, trainer.global_step, float(trainer.callback_metrics["val/map"]))
        ),
    )
    best = ModelCheckpoint(dirpath=tmp_path, filename="best-{epoch}", monitor="val/map", mode="max")
    trainer = pl.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        callbacks=[ClearMLModelRegistry(), best],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = DataLoader(torch.ones(4, 1), batch_size=2)  # two steps an epoch
    trainer.fit(
        ScoredModule([0.125, 0.5, 0.25, 0.75]), train_dataloaders=data, val_dataloaders=data
    )
    # each best is registered at the step its epoch ended (not one epoch later), with its score
    assert registered == [
        ("best", "best-epoch=0.ckpt", 2, 0.125),
        ("best", "best-epoch=1.ckpt", 4, 0.5),
        ("best", "best-epoch=3.ckpt", 8, 0.75),
    ]
