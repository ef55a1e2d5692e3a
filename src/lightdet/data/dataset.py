"""Torch dataset over detection records, and the detection collate."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lightdet.data.images import DEFAULT_MAX_PIXELS, load_rgb
from lightdet.data.records import DetectionRecord

Target = dict[str, torch.Tensor]


class DetectionDataset(Dataset):
    """Serves ``(image, target)`` pairs following the datamodule's data contract.

    Besides the contract's keys, each target carries ``dropped_boxes``: how many of the image's
    boxes the transform removed (cropped away or below ``min_visibility``), counted per epoch.
    """

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        transform: Callable,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.max_image_pixels = max_image_pixels

    def __len__(self) -> int:
        return len(self.records)

    def image_of(self, image_id: int) -> torch.Tensor:
        """The image whose record has ``image_id``, as this dataset serves it (its transform
        applied: the frame its evaluated boxes are in)."""
        if getattr(self, "_positions", None) is None:
            self._positions = {r.image_id: i for i, r in enumerate(self.records)}
        return self[self._positions[int(image_id)]][0]

    def reseed(self, seed: int) -> None:
        """Seed the augmentation pipeline.

        albumentations 2.x keeps its own random state and ignores global seeds, so without this
        augmentations are not reproducible, and every loader worker (a copy of the same state)
        would draw the same augmentation sequence.
        """
        if hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(int(seed) % 2**32)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        record = self.records[index]
        out = self.transform(
            image=load_rgb(record.image_path, self.max_image_pixels),
            bboxes=record.boxes,
            labels=record.labels,
            iscrowd=record.iscrowd,
        )
        # albumentations returns lists (empty when every box is dropped): build dtypes explicitly
        labels = np.asarray(out["labels"], np.int64).reshape(-1)  # [N]
        if (labels < 1).any():  # label 0 is background: detectors would ignore the box silently
            raise ValueError(f"{record.source}: label 0 reached the model (internal invariant)")
        target = {
            "boxes": torch.as_tensor(
                np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
            ),  # [N, 4]
            "labels": torch.as_tensor(labels),  # [N]
            "iscrowd": torch.as_tensor(np.asarray(out["iscrowd"], bool).reshape(-1)),  # [N]
            "image_id": torch.tensor(record.image_id, dtype=torch.int64),
            "dropped_boxes": torch.tensor(len(record.boxes) - len(labels), dtype=torch.int64),
        }
        return out["image"], target


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed each worker's augmentations from torch's per-worker seed, and
    leave SIGINT and SIGTERM to the main process. A terminal's Ctrl+C, ``pkill -f``, ``scancel``
    or a process-group kill signal every process of the job; a worker that died of it would
    crash the run before the main process's graceful stop (checkpoint, exit 128 + signal). The
    main process still shuts its workers down (their done event, and their watchdog of it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    info = torch.utils.data.get_worker_info()
    info.dataset.reseed(info.seed)  # distinct per worker, reproducible under a global seed


def collate_detection(batch: list) -> tuple[list[torch.Tensor], list[Target]]:
    """Detection batches are lists: images differ in size and targets in box count."""
    images, targets = zip(*batch)
    return Batch((list(images), list(targets)))


class Batch(tuple):
    """A collated ``(images, targets)``, sent from a loader worker as one tensor per dtype.

    Each tensor a worker returns travels through its own shared-memory segment and file
    descriptor: a batch of 8 images with 5-tensor targets was 48 of them, most of the training
    loop's wait for data (measured in benchmarks/README.md). Pickled
    (only when it crosses processes), the batch's tensors are copied into one flat buffer per
    dtype; the receiving side gets the same lists of tensors back as views of those buffers.
    """

    def __reduce__(self):
        images, targets = self
        if not all(
            isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in images
        ) or not all(isinstance(t, dict) for t in targets):
            return tuple, (tuple(self),)
        tensors, layout = [], []
        for item in [*images, *targets]:
            if isinstance(item, torch.Tensor):
                tensors.append(item)
                layout.append(None)
                continue
            entry = {}
            for key, value in item.items():
                if isinstance(value, torch.Tensor) and value.device.type == "cpu":
                    tensors.append(value)
                    entry[key] = None
                else:
                    entry[key] = ("value", value)
            layout.append(entry)
        dtypes = sorted({t.dtype for t in tensors}, key=str)
        buffers = [torch.cat([t.reshape(-1) for t in tensors if t.dtype == d]) for d in dtypes]
        shapes = [(dtypes.index(t.dtype), tuple(t.shape)) for t in tensors]
        return _unpack_batch, (len(images), layout, shapes, buffers)


def _unpack_batch(num_images: int, layout: list, shapes: list, buffers: list) -> Batch:
    offsets = [0] * len(buffers)
    tensors = []
    for buffer_index, shape in shapes:
        start = offsets[buffer_index]
        numel = math.prod(shape)
        tensors.append(buffers[buffer_index][start : start + numel].view(shape))
        offsets[buffer_index] = start + numel
    it = iter(tensors)
    items = [
        next(it)
        if entry is None
        else {k: next(it) if v is None else v[1] for k, v in entry.items()}
        for entry in layout
    ]
    return Batch((items[:num_images], items[num_images:]))


def batch_size(batch: tuple[list[torch.Tensor], list[Target]]) -> int:
    """Images in a collated batch (for Lightning's ThroughputMonitor)."""
    return len(batch[0])
