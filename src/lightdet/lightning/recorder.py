"""What one validation or test pass saw, image by image, for the evaluation report."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback
from torch import Tensor

from lightdet.evaluation.report import EvaluatedImage


class EvaluationRecorder(Callback):
    """Keeps, for the last validation or test pass (sanity checks excluded), every image's id,
    file name, size, ground truth and detections (CPU numpy, as the metric scored them), and
    the first ``num_images`` images with both, for pictures.

    Under DDP every process ends the pass holding all processes' images (gathered as Python
    objects, as the mAP states are), sorted by image id.

    Args:
        num_images: images kept with their pixels (for a mosaic of predictions).
    """

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images
        self.images: list[EvaluatedImage] = []
        self.samples: list[tuple[Tensor, dict, dict]] = []
        self.split: str | None = None

    def _start(self, trainer: pl.Trainer, split: str) -> None:
        if not trainer.sanity_checking:
            self.images, self.samples, self.split = [], [], split

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test")

    def _keep(self, trainer: pl.Trainer, outputs, batch) -> None:
        if trainer.sanity_checking:
            return
        images, targets = batch
        for image, target, pred in zip(images, targets, outputs):
            self.images.append(
                EvaluatedImage(
                    image_id=int(target["image_id"]),
                    file_name="",
                    width=int(image.shape[-1]),
                    height=int(image.shape[-2]),
                    target=_numpy(target, ("boxes", "labels", "iscrowd")),
                    pred=_numpy(pred, ("boxes", "scores", "labels")),
                )
            )
            if len(self.samples) < self.num_images:
                self.samples.append((image.detach().cpu(), _cpu(target), _cpu(pred)))

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._keep(trainer, outputs, batch)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._keep(trainer, outputs, batch)

    def _finish(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking:
            return
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, self.images)
            self.images = [image for part in parts for image in part]
        self.images.sort(key=lambda image: image.image_id)
        datasets = getattr(trainer.datamodule, "datasets", None) or {}
        if self.split in datasets:
            names = {r.image_id: r.image_path.name for r in datasets[self.split].records}
            for image in self.images:
                image.file_name = names.get(image.image_id, "")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer)


def _numpy(d: dict[str, Tensor], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """As numpy; floats as float32 (bf16 outputs of mixed precision convert exactly)."""
    out = {}
    for k in keys:
        t = d[k].detach().cpu()
        out[k] = (t.float() if t.is_floating_point() else t).numpy()
    return out


def _cpu(d: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in d.items() if isinstance(v, torch.Tensor)}
