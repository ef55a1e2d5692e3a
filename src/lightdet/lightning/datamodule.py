"""The one LightningDataModule for every dataset format."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler

from lightdet.data.dataset import DetectionDataset, collate_detection, seed_worker
from lightdet.data.transforms import eval_preset


class DetectionDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a VOC, COCO or shapes source.

    Data contract (what every loader yields, as lists of length ``batch_size``):

    - image: float ``Tensor[3, H, W]`` in [0, 1], not normalized (the detectors normalize and
      resize internally);
    - target: ``{"boxes": float32 [N, 4] xyxy absolute pixels, "labels": int64 [N] in 1..K,
      "iscrowd": bool [N] (ignored by evaluation), "image_id": int64 scalar}``; ``N`` may be 0;
    - ``num_classes = K + 1`` for every model (label 0 is background).

    Args:
        source: a :mod:`lightdet.data.sources` object
            (``VOCSource``, ``COCOSource``, ``ShapesSource``).
        batch_size: images per batch (per process under DDP).
        num_workers: loader worker processes.
        train_transform: albumentations pipeline for training (default: none).
        eval_transform: pipeline for validation and test (default: conversion only).
        pin_memory: pin host memory (useful on GPU).
    """

    def __init__(
        self,
        source,
        *,
        batch_size: int = 8,
        num_workers: int = 2,
        train_transform: Callable | None = None,
        eval_transform: Callable | None = None,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_transform = train_transform or eval_preset()
        self.eval_transform = eval_transform or eval_preset()
        self.pin_memory = pin_memory
        self.datasets: dict[str, DetectionDataset] = {}

    @property
    def class_names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) + 1

    @property
    def category_map(self) -> dict:
        return dict(self.source.category_map)

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "", ("train", "val", "test")
        )
        for split in wanted:
            if split in self.datasets:
                continue
            records = self.source.records(split)
            if records is None:
                continue
            transform = self.train_transform if split == "train" else self.eval_transform
            self.datasets[split] = DetectionDataset(records, transform)

    def has_split(self, split: str) -> bool:
        return split in self.datasets

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"data: no {split!r} split (is it set in the data config?)")
        dataset = self.datasets[split]
        if self.num_workers == 0:  # no worker_init_fn: seed from the (seeded) global torch RNG
            dataset.reseed(int(torch.randint(2**31 - 1, ()).item()))
        sampler = _distributed_sampler(dataset, shuffle)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            drop_last=shuffle,  # a 1-image last batch breaks BatchNorm statistics
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate_detection,
            worker_init_fn=seed_worker,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _distributed_sampler(dataset, shuffle: bool):
    """Under DDP: shuffled shards for training; for evaluation, shards without the repeated
    padding of DistributedSampler, so mAP over all processes equals a single-process mAP.
    Lightning keeps samplers that are already distributed (and calls set_epoch on them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    if shuffle:
        return DistributedSampler(dataset, shuffle=True, drop_last=True)
    return UnrepeatedDistributedSampler(dataset, shuffle=False)
