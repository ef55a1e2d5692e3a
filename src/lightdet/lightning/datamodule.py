"""The one LightningDataModule for every dataset format."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from lightning_fabric.utilities.data import suggested_max_num_workers
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader

from lightdet.data import index_cache
from lightdet.data.checks import DataChecker, DataPolicy, check_records, report
from lightdet.data.classes import num_classes
from lightdet.data.dataset import DetectionDataset, collate_detection, seed_worker
from lightdet.data.records import AnnotationError
from lightdet.data.sources import DataSource
from lightdet.data.transforms import eval_preset
from lightdet.lightning.ranks import is_global_zero
from lightdet.lightning.resume import EpochSampler, ResumableDataLoader


class DetectionDataModule(pl.LightningDataModule):
    """Train/val/test loaders over a VOC, COCO, YOLO or shapes source.

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
        num_workers: loader worker processes, or ``auto`` (see :attr:`num_workers`).
        train_transform: albumentations pipeline for training (default: none).
        eval_transform: pipeline for validation and test (default: conversion only).
        pin_memory: pin host memory (useful on GPU).
        policy: what to do with bad input (:class:`~lightdet.data.checks.DataPolicy` or its
            fields): every split is checked when it is indexed, and the counts are kept in
            ``checks`` (reported in the log and to ClearML).
    """

    def __init__(
        self,
        source: DataSource,
        *,
        batch_size: int = 8,
        num_workers: int | Literal["auto"] = 2,
        train_transform: Callable | None = None,
        eval_transform: Callable | None = None,
        pin_memory: bool = False,
        policy: DataPolicy | Mapping | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        if num_workers != "auto" and not (isinstance(num_workers, int) and num_workers >= 0):
            raise ValueError(
                f"data.num_workers: expected auto or a whole number >= 0, got {num_workers!r}"
            )
        self._num_workers = num_workers
        self.train_transform = train_transform or eval_preset()
        self.eval_transform = eval_transform or eval_preset()
        self.pin_memory = pin_memory
        self.policy = policy if isinstance(policy, DataPolicy) else DataPolicy(**(policy or {}))
        self.datasets: dict[str, DetectionDataset] = {}
        self.checks: dict[str, DataChecker] = {}

    @property
    def class_names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def num_classes(self) -> int:
        return num_classes(self.class_names)

    @property
    def category_map(self) -> dict:
        return dict(self.source.category_map)

    @property
    def synthetic(self) -> bool:
        """Whether the data is the built-in shapes (made to be learnt from random weights)."""
        return bool(getattr(self.source, "synthetic", False))

    @property
    def difficult_boxes(self) -> bool:
        """The targets' ``iscrowd`` flags are VOC's difficult (scored the devkit's way), not
        COCO's crowd regions."""
        return bool(getattr(self.source, "difficult_boxes", False))

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "", ("train", "val", "test")
        )
        indexed = []
        fingerprints: dict = {}  # the splits of one source share its folders: walked once
        for split in wanted:
            if split in self.datasets:
                continue
            checker = DataChecker(self.policy, split)
            records = self._index(split, checker, fingerprints)
            if records is None:
                continue
            transform = self.train_transform if split == "train" else self.eval_transform
            pixels = self.policy.max_image_pixels
            self.datasets[split] = DetectionDataset(records, transform, pixels)
            self.checks[split] = checker
            indexed.append(checker)
        if indexed:
            sizes = ", ".join(f"{c.split} {len(self.datasets[c.split])}" for c in indexed)
            rank_zero_info(f"data: indexed {sizes} images; checks:\n{report(indexed)}")
            self._check_shared_images([c.split for c in indexed])

    def _check_shared_images(self, splits: list[str]) -> None:
        """An evaluation split that holds training images scores what the model has seen: said
        in a warning with the count, and counted (``shared_with_train``), never refused (a
        quick check on the training images can be what one wants)."""
        train = self.datasets.get("train")
        if train is None:
            return
        seen = {str(r.image_path) for r in train.records}
        for split in splits:
            if split == "train":
                continue
            records = self.datasets[split].records
            shared = sum(str(r.image_path) in seen for r in records)
            if shared:
                message = f"{shared} of {len(records)} images are training images"
                self.checks[split].note("shared_with_train", message, count=shared)
                rank_zero_warn(
                    f"data: {shared} of {len(records)} {split} images are training images too: "
                    f"{split} metrics score images the model trained on"
                )

    def _index(self, split: str, checker: DataChecker, fingerprints: dict) -> list | None:
        """The split's checked records: from the index cache when the source has one and its
        files are unchanged (:mod:`lightdet.data.index_cache`), else read and checked (and
        cached)."""
        settings = getattr(self.source, "index_settings", None)
        cached = None
        if self.policy.cache_index and settings is not None:
            config, folders = settings()
            where = tuple(str(f) for f in folders)
            if where not in fingerprints:
                fingerprints[where] = index_cache.fingerprint(folders)
            key = index_cache.cache_key(config, split, self.policy)
            digest, newest = fingerprints[where]
            cached = index_cache.load(key, digest, checker, folders, config.get("class_names"))
        if cached is not None:
            records, state = cached
            self.source.restore_index_state(state)
            rank_zero_info(
                f"data: {split} index of {len(records)} images from the cache "
                "(files unchanged since indexed)"
            )
            return records
        records = self.source.records(split, checker)
        if records is None:
            return None
        if not records:
            raise AnnotationError(f"data: the {split!r} split has no images ({self.source})")
        records = check_records(records, checker)
        if self.policy.cache_index and settings is not None and is_global_zero():
            index_cache.save(key, digest, records, checker, self.source.index_state(), newest)
        return records

    def state_dict(self) -> dict:
        """Kept in every checkpoint: the class names and the seeded splits made for data folders
        without split lists (``{folder: {split: names}}``), so the run can be repeated."""
        made = getattr(self.source, "made_splits", None)
        return {"class_names": self.class_names, "made_splits": made() if made else {}}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore: the split is made again from the same files and seed."""

    def check_rows(self) -> list[list]:
        """``[split, outcome, reason, count]`` for every count of the index-time checks."""
        rows = []
        for split, c in self.checks.items():
            for outcome, counter in (
                ("skipped", c.skipped),
                ("fixed", c.fixed),
                ("noted", c.noted),
            ):
                rows += [[split, outcome, reason, n] for reason, n in sorted(counter.items())]
        return rows

    def has_split(self, split: str) -> bool:
        return split in self.datasets

    def _dataset(self, split: str) -> DetectionDataset:
        if split not in self.datasets:
            raise RuntimeError(f"data: no {split!r} split (is it set in the data config?)")
        dataset = self.datasets[split]
        if self.num_workers == 0:  # no worker_init_fn: seed from the (seeded) global torch RNG
            dataset.reseed(int(torch.randint(2**31 - 1, ()).item()))
        return dataset

    @property
    def num_workers(self) -> int:
        """Loader worker processes: the number set, or (``auto``) Lightning's suggestion for
        the cores this process may use and the devices per machine (one fewer than the cores
        per device, at least 1), at most 8."""
        if self._num_workers != "auto":
            return int(self._num_workers)
        trainer = getattr(self, "trainer", None)
        devices = trainer.num_devices if trainer is not None else 1
        return min(8, suggested_max_num_workers(max(1, devices)))

    @num_workers.setter
    def num_workers(self, value: int | str) -> None:
        self._num_workers = value

    def _loader_args(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "pin_memory": self.pin_memory,
            "collate_fn": collate_detection,
            "worker_init_fn": seed_worker,
        }

    def train_dataloader(self) -> DataLoader:
        """Shuffled by a seeded per-epoch permutation that checkpoints can resume mid-epoch
        (:mod:`lightdet.lightning.resume`); drops the last partial batch (a 1-image batch
        breaks BatchNorm statistics)."""
        dataset = self._dataset("train")
        sampler = EpochSampler(dataset, seed=int(torch.initial_seed()) % 2**31)
        loader = ResumableDataLoader(
            dataset, sampler=sampler, drop_last=True, **self._loader_args()
        )
        loader.progress = self._train_progress
        return loader

    def _train_progress(self) -> tuple[int, int]:
        """Where training resumes: (epoch, batches of it already trained)."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        # the epoch the batch counter belongs to: the last one started (current_epoch moves on
        # once an epoch completes, before the counter is reset for the next one)
        epoch = max(trainer.fit_loop.epoch_progress.current.started - 1, 0)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:  # saved at the end of an epoch: the next one
            return epoch + 1, 0
        return epoch, done

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self._dataset(split)
        return DataLoader(dataset, sampler=_eval_sampler(dataset), **self._loader_args())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def _eval_sampler(dataset):
    """Under DDP, shards without the repeated padding of DistributedSampler, so mAP over all
    processes equals a single-process mAP; in order otherwise. Lightning keeps samplers that are
    already distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False)
