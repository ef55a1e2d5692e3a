"""DetectionModule: the one Lightning system, for every torchvision detector."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from lightdet.evaluation.metrics import scalars
from lightdet.evaluation.predictions import finite_predictions, predict_by_size
from lightdet.evaluation.report import EvaluationReport, build_report
from lightdet.lightning.ema import averaged_state_for_weights_only
from lightdet.lightning.optimization import (
    build_optimizer,
    parameter_groups,
    scale_learning_rates,
)
from lightdet.lightning.recorder import EvaluationRecorder
from lightdet.lightning.schedulers import budget_progress

Batch = tuple[list[Tensor], list[dict[str, Tensor]]]


class DetectionModule(pl.LightningModule):
    """Trains and evaluates any torchvision detector; never looks at which one it is.

    torchvision detectors return a dict of losses in train mode and detections in eval mode, so
    validation and test compute COCO mAP and no loss.

    Args:
        net: a torchvision detection model (see :mod:`lightdet.models`).
        optimizer: partial taking the trainable parameters (``torch.optim.AdamW``, ...); None for
            a module that only evaluates.
        scheduler: partial taking ``(optimizer, total_steps=...)``, stepped every batch, or None.
        class_names: the K class names (label ``i`` is ``class_names[i - 1]``).
        category_map: dataset id -> label map, kept with the checkpoint.
        config: the resolved run configuration as a plain dict, kept with the checkpoint.
        nonfinite_loss: what a NaN/inf training loss or gradient does: ``skip`` the step (no
            update; counted as ``train/nonfinite_steps``; under DDP every process skips
            together) or ``stop`` with an error naming the step and the batch's image ids.
        max_nonfinite_steps: with ``skip``, stop once more steps than this were skipped.
        backbone_lr_mult: the backbone trunk's learning rate as a multiple of the others'.
        lr_scale: every learning rate x this (the effective batch's scaling, set by training).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        *,
        class_names: Sequence[str] = (),
        category_map: dict | None = None,
        config: dict | None = None,
        nonfinite_loss: str = "skip",
        max_nonfinite_steps: int = 20,
        backbone_lr_mult: float = 1.0,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        # plain containers only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                "class_names": list(class_names),
                "category_map": dict(category_map or {}),
                "config": config or {},
            }
        )
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.backbone_lr_mult = float(backbone_lr_mult)
        self.lr_scale = float(lr_scale)
        self.class_names = list(class_names)
        self.recorder = EvaluationRecorder()  # the current validation or test pass
        self.dropped_predictions = 0
        self.last_dropped = 0  # the last pass's, on this process
        if nonfinite_loss not in ("skip", "stop"):
            raise ValueError(f"nonfinite_loss: expected 'skip' or 'stop', got {nonfinite_loss!r}")
        self.nonfinite_loss = nonfinite_loss
        self.max_nonfinite_steps = max_nonfinite_steps
        self.nonfinite_steps = 0
        self._batch_ids: list[int] = []
        # the last pass's one report, read by the callbacks (ClearML, results/) and evaluate
        self.last_report: EvaluationReport | None = None

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return self.net(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        images, targets = batch
        self._batch_ids = [int(t["image_id"]) for t in targets]  # for a gradient's message
        losses = self.net(images, targets)
        loss = sum(losses.values())
        n = len(images)
        dropped = sum(int(t["dropped_boxes"]) for t in targets if "dropped_boxes" in t)
        self.log(
            "train/dropped_boxes",
            float(dropped),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            batch_size=n,
        )
        if not self._all_finite(loss):
            return self._nonfinite(losses, targets)
        parts = {
            f"train/{k if k.startswith('loss') else 'loss_' + k}": v for k, v in losses.items()
        }
        self.log_dict(parts, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        self.log(
            "train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=n
        )
        return loss

    def _all_finite(self, loss: Tensor) -> bool:
        """True when the loss is finite on every process (so all skip, or none: a process that
        skipped alone would leave the others waiting in the gradient all-reduce)."""
        finite = torch.isfinite(loss.detach()).all().float()
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce(finite, reduce_op="min")
        return bool(finite > 0)

    def on_before_optimizer_step(self, optimizer) -> None:
        """A finite loss can still give NaN/inf gradients (a loss with an infinite slope
        somewhere): the update is skipped and counted as for a non-finite loss, so NaN never
        reaches the weights. Gradients are all-reduced by then, so DDP processes agree. Under
        a GradScaler (fp16), which skips such steps itself, nothing is done here."""
        if getattr(self.trainer.precision_plugin, "scaler", None) is not None:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or _all_finite(grads):
            return
        named = [(n, p.grad) for n, p in self.named_parameters() if p.grad is not None]
        bad = [n for n, g in named if not torch.isfinite(g).all()]
        optimizer.zero_grad(set_to_none=True)  # the optimizer skips parameters without grads
        where = f"non-finite gradient at step {self.global_step} (epoch {self.current_epoch})"
        detail = (
            f"{len(bad)} parameters, first {bad[0]}; image ids {self._batch_ids} (on this process)"
        )
        self._skip_step(where, detail, max(1, len(self._batch_ids)))

    def _nonfinite(self, losses: dict[str, Tensor], targets: list[dict[str, Tensor]]) -> None:
        parts = ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
        ids = [int(t["image_id"]) for t in targets]
        where = f"non-finite training loss at step {self.global_step} (epoch {self.current_epoch})"
        self._skip_step(where, f"{parts}; image ids {ids} (on this process)", len(targets))
        return None  # Lightning skips backward and the optimizer step

    def _skip_step(self, where: str, detail: str, batch_size: int) -> None:
        self.nonfinite_steps += 1
        if self.nonfinite_loss == "stop" or self.nonfinite_steps > self.max_nonfinite_steps:
            why = (
                "nonfinite_loss=stop"
                if self.nonfinite_loss == "stop"
                else f"more than max_nonfinite_steps={self.max_nonfinite_steps} skipped"
            )
            raise FloatingPointError(f"{where}: {detail} ({why})")
        rank_zero_warn(f"{where}, step skipped ({self.nonfinite_steps} so far): {detail}")
        self.log(
            "train/nonfinite_steps",
            float(self.nonfinite_steps),
            on_step=True,
            batch_size=batch_size,
        )

    def _eval_step(self, batch: Batch) -> list[dict[str, Tensor]]:
        images, targets = batch
        preds, dropped = finite_predictions(predict_by_size(self.net, images))
        self.dropped_predictions += dropped
        self.recorder.keep(images, targets, preds)
        return preds  # for callbacks (debug images)

    def on_validation_epoch_start(self) -> None:
        self.recorder.start()

    def on_test_epoch_start(self) -> None:
        self.recorder.start()

    def validation_step(self, batch: Batch, batch_idx: int) -> list[dict[str, Tensor]]:
        return self._eval_step(batch)

    def test_step(self, batch: Batch, batch_idx: int) -> list[dict[str, Tensor]]:
        return self._eval_step(batch)

    def _evaluate(self, stage: str) -> None:
        """The pass's one report (every process's images, gathered once), and its scalars."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        dataset = (getattr(datamodule, "datasets", None) or {}).get(stage)
        names = {r.image_id: r.image_path.name for r in dataset.records} if dataset else {}
        images = self.recorder.finish(names)
        # the scored data's ids (evaluate may score other data with the same classes)
        category_map = getattr(datamodule, "category_map", None) or self.hparams.get(
            "category_map", {}
        )
        difficult = bool(getattr(datamodule, "difficult_boxes", False))
        self.last_report = build_report(
            images, self.class_names, category_map, stage, difficult=difficult
        )
        logged = scalars(self.last_report, stage)
        logged[f"{stage}/dropped_predictions"] = float(self.dropped_predictions)
        self.last_dropped, self.dropped_predictions = self.dropped_predictions, 0
        if self.last_dropped:
            rank_zero_warn(
                f"{stage}: {self.last_dropped} detections with NaN/inf boxes or scores left out "
                f"of the scores ({stage}/dropped_predictions)"
            )
        headline = f"{stage}/map_50"  # shown on the progress bar
        self.log(headline, logged.pop(headline), prog_bar=True)
        self.log_dict(logged)

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val")

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        averaged_state_for_weights_only(self._trainer, self, checkpoint)  # EMA: the best too

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise RuntimeError("DetectionModule: no optimizer given, this module only evaluates")
        optimizer = build_optimizer(
            self.optimizer_factory, parameter_groups(self.net, self.backbone_lr_mult)
        )
        scale_learning_rates(optimizer, self.lr_scale)
        if self.scheduler_factory is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if math.isinf(total):  # a wall-clock budget: the schedule follows the time used
            scheduler = self.scheduler_factory(
                optimizer, total_steps=None, progress=budget_progress(self.trainer)
            )
        else:
            scheduler = self.scheduler_factory(optimizer, total_steps=int(total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _all_finite(tensors: list[Tensor]) -> bool:
    """Whether every element of every tensor is finite, in one fused pass per device and dtype
    (GradScaler's own check, with a scale of 1: far cheaper on a CPU than a check per tensor;
    measured in benchmarks/README.md); per tensor where that kernel is missing."""
    check = getattr(torch, "_amp_foreach_non_finite_check_and_unscale_", None)
    if check is None:
        return all(bool(torch.isfinite(t).all()) for t in tensors)
    groups: dict = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for (device, _), group in groups.items():
        found = torch.zeros((), device=device)
        check(group, found, torch.ones((), device=device))
        if found.item():
            return False
    return True
