"""One evaluation pass, recorded once: what a validation or test pass saw, image by image.

The system (:class:`~lightdet.lightning.module.DetectionModule`) owns one recorder; at the end
of a pass it gathers every process's images once (DDP) and builds the pass's one
:class:`~lightdet.evaluation.report.EvaluationReport`, which everything then reads: the logged
scalars, the ClearML plots, the run folder's ``results/`` and ``make eval``'s files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from lightdet.evaluation.report import EvaluatedImage


class EvaluationRecorder:
    """Keeps, for the current pass, every image's id, file name, size, ground truth and
    detections (CPU numpy, as scored), and the first ``num_images`` images with both, for
    pictures.

    Args:
        num_images: images kept with their pixels (a mosaic of predictions, on this process).
    """

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images
        self.images: list[EvaluatedImage] = []
        self.samples: list[tuple[Tensor, dict, dict]] = []

    def start(self) -> None:
        """A new pass: what the last one kept is let go."""
        self.images, self.samples = [], []

    def keep(
        self, images: Sequence[Tensor], targets: Sequence[Mapping], preds: Sequence[Mapping]
    ) -> None:
        """One batch: its images, targets and (finite) predictions."""
        for image, target, pred in zip(images, targets, preds):
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

    def finish(self, file_names: Mapping[int, str] | None = None) -> list[EvaluatedImage]:
        """The pass's images from every process (gathered once, as Python objects: processes
        may hold different numbers of images), sorted by image id, with their file names."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list = [None] * dist.get_world_size()
            dist.all_gather_object(parts, self.images)
            self.images = [image for part in parts for image in part]
        self.images.sort(key=lambda image: image.image_id)
        for image in self.images:
            image.file_name = (file_names or {}).get(image.image_id, "")
        return self.images


def _numpy(d: Mapping[str, Tensor], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """As numpy; floats as float32 (bf16 outputs of mixed precision convert exactly)."""
    out = {}
    for k in keys:
        t = d[k].detach().cpu()
        out[k] = (t.float() if t.is_floating_point() else t).numpy()
    return out


def _cpu(d: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in d.items() if isinstance(v, torch.Tensor)}
