"""A trained detector for notebooks and scripts: ``Detector.from_checkpoint(path).predict(x)``.

Importing this module imports neither ClearML, nor Hydra's application machinery, nor
Lightning: a detector is a plain torchvision module (``detector.net``) with its class names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from lightdet.data.classes import class_name
from lightdet.data.inputs import ImageInput, image_inputs
from lightdet.evaluation.predictions import finite_predictions, predict_by_size
from lightdet.evaluation.thresholds import DEFAULT_SCORE_THRESHOLD, default_threshold

_EVAL_PRESET = "lightdet.data.transforms.eval_preset"
# Lightning precision -> the autocast dtype its validation loop runs the model under
_AUTOCAST = {
    "bf16-mixed": torch.bfloat16,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
    "16": torch.float16,
}


@dataclass
class Detections:
    """What the detector found in one image, in that image's pixels (after EXIF orientation).

    Attributes:
        boxes: float32 ``[N, 4]`` xyxy, absolute pixels of the upright image.
        scores: float32 ``[N]``, highest first.
        labels: int64 ``[N]`` in 1..K.
        names: the N class names.
        width, height: of the image the boxes refer to, in pixels (as ``predictions.json``
            names them; ``image_size`` is the old ``(height, width)`` pair).
        source: the image's path, when it came from a file.
        error: why the image could not be read (``errors="skip"``); nothing was detected.
        dropped: detections the model returned with a NaN/inf box or score, dropped (as
            evaluation drops them) before the threshold: a model that gives them is broken.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    names: list[str]
    width: int
    height: int
    source: str | None = None
    error: str | None = None
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)``: deprecated, use :attr:`width` and :attr:`height` (one
        convention with ``predictions.json``)."""
        import warnings

        warnings.warn(
            "Detections.image_size (height, width) is deprecated: use .width and .height",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.height, self.width

    def to_list(self) -> list[dict]:
        """One plain dict per detection (``box``, ``score``, ``label``, ``name``), for JSON."""
        return [
            {
                "box": [round(v, 2) for v in box],
                "score": round(score, 4),
                "label": label,
                "name": name,
            }
            for box, score, label, name in zip(
                self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), self.names
            )
        ]


class Detector:
    """A torchvision detector with the classes it was trained on.

    Args:
        net: a torchvision detection model (it normalizes and resizes internally).
        class_names: the K class names (label ``i`` is ``class_names[i - 1]``).
        category_map: the dataset's category id -> label map, if any.
        config: the run config it was trained with, if known.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default: CUDA when available.
        precision: Lightning's name for how the model runs: ``32-true`` (float32),
            ``bf16-mixed`` or ``16-mixed`` (autocast, as Lightning's evaluation loop does),
            or ``auto`` (:mod:`lightdet.lightning.precision`: what suits the device).
        score_thresh: what :meth:`predict` keeps by default (``make predict``'s default:
            :meth:`from_checkpoint` takes the F1-optimal threshold the checkpoint's evaluation
            kept beside it, else 0.25); ``threshold_source`` says where it came from.
    """

    def __init__(
        self,
        net: nn.Module,
        class_names: Sequence[str],
        *,
        category_map: dict | None = None,
        config: dict | None = None,
        device: str | torch.device | None = None,
        precision: str = "32-true",
        score_thresh: float = DEFAULT_SCORE_THRESHOLD,
        threshold_source: str = "default",
    ) -> None:
        self.net = net.eval()
        self.score_thresh, self.threshold_source = float(score_thresh), threshold_source
        self.configured_precision = str(precision)
        self.class_names = list(class_names)
        self.category_map = dict(category_map or {})
        self.config = dict(config or {})
        self.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device | None = None,
        precision: str | None = None,
    ) -> Detector:
        """The detector as it was trained: architecture and input size from the checkpoint's
        own config, weights loaded ``weights_only``, class names and category map.

        Args:
            path: a checkpoint written by training.
            device: where to run (default: CUDA when available).
            precision: default: the run's ``trainer.precision``, so that predictions are the
                ones its validation loop made.

        Raises:
            FileNotFoundError: no such file.
            NotACheckpointError: the file is not a lightdet training checkpoint.
            UnsafeCheckpointError, UnsafeConfigError: the file or its stored config was
                tampered with (code in the pickle, a target that is not allowed).
            CheckpointMismatchError: the weights do not fit the stored architecture.
        """
        from lightdet.models.restore import restore_net  # Hydra's instantiate: on use only

        trained = restore_net(path)
        eval_target = ((trained.config.get("augmentation") or {}).get("eval") or {}).get(
            "_target_", _EVAL_PRESET
        )
        if eval_target != _EVAL_PRESET:
            import warnings

            warnings.warn(
                f"{path}: evaluated with {eval_target}; predict converts images "
                f"only ({_EVAL_PRESET})",
                stacklevel=2,
            )
        if precision is None:
            precision = (trained.config.get("trainer") or {}).get("precision") or "32-true"
        threshold, source = default_threshold(path)  # as make predict takes it
        return cls(
            trained.net,
            trained.class_names,
            category_map=trained.category_map,
            config=trained.config,
            device=device,
            precision=precision,
            score_thresh=threshold,
            threshold_source=source,
        )

    def to(self, device: str | torch.device) -> Detector:
        """Move the detector to ``device``; returns itself."""
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def __repr__(self) -> str:
        return (
            f"Detector({type(self.net).__name__}, classes={self.class_names}, "
            f"device={self.device}, precision={self.precision})"
        )

    def predict(
        self,
        inputs,
        *,
        score_thresh: float | None = None,
        classes: Iterable[str | int] | None = None,
        batch_size: int = 8,
        max_detections: int | None = None,
        errors: str = "raise",
    ) -> list[Detections]:
        """Detect objects; one :class:`Detections` per image, in input order.

        Args:
            inputs: a path (image file or folder), a list of paths, a PIL image, a numpy
                ``[H, W, 3]`` uint8 RGB array, a tensor (float ``[3, H, W]`` in [0, 1]), or a
                list of any of these.
            score_thresh: keep detections scoring at least this (default: the detector's
                ``score_thresh``, the checkpoint's F1-optimal threshold as ``make predict``
                uses it). 0 keeps all the model returns (its own ``score_thresh`` applies
                first, as in evaluation).
            classes: keep only these classes (names or labels 1..K).
            batch_size: images per batch (images of different sizes go through the network
                in one forward per size, so no result depends on the batch it was in).
            max_detections: keep at most this many per image, highest scores first.
            errors: ``raise`` on an unreadable image file, or ``skip`` it (its result has
                ``error`` set and no detections).
        """
        kwargs = {
            "score_thresh": score_thresh,
            "classes": classes,
            "batch_size": batch_size,
            "max_detections": max_detections,
            "errors": errors,
        }
        return [found for found, _ in self.stream(inputs, **kwargs)]

    @torch.inference_mode()
    def stream(
        self,
        inputs,
        *,
        score_thresh: float | None = None,
        classes: Iterable[str | int] | None = None,
        batch_size: int = 8,
        max_detections: int | None = None,
        errors: str = "raise",
    ) -> Iterator[tuple[Detections, Tensor | None]]:
        """:meth:`predict` one batch at a time: yields ``(detections, image)`` per input, in
        order, ``image`` being the float ``[3, H, W]`` tensor the detector saw (None for an
        image that could not be read). For progress bars and drawing."""
        from lightdet.data.images import ImageProblem
        from lightdet.data.transforms import eval_preset  # albumentations: on use only

        if int(batch_size) < 1:
            raise ValueError(f"predict: batch_size must be at least 1, got {batch_size}")
        if errors not in ("raise", "skip"):
            raise ValueError(f"predict: errors must be 'raise' or 'skip', got {errors!r}")
        wanted = self._labels(classes)
        score_thresh = self.score_thresh if score_thresh is None else float(score_thresh)
        convert = eval_preset()  # the validation pipeline's conversion, bit for bit
        items = image_inputs(inputs)
        for start in range(0, len(items), batch_size):
            batch, images = items[start : start + batch_size], []
            for item in batch:
                try:
                    images.append(_tensor(item, convert))
                except ImageProblem as err:
                    if errors == "raise":
                        raise
                    images.append(err)
            readable = [image for image in images if isinstance(image, Tensor)]
            outputs = iter(self.forward(readable) if readable else [])
            for item, image in zip(batch, images):
                if not isinstance(image, Tensor):
                    yield _unreadable(item, str(image)), None
                    continue
                found = self._detections(item, image, next(outputs), score_thresh, wanted)
                yield _top(found, max_detections), image

    @torch.inference_mode()
    def forward(self, images: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        """The network's own outputs on decoded images: its transform (normalize, resize),
        forward and postprocessing (decoding, NMS), under the detector's precision. What
        :meth:`stream` runs per batch, and what ``make compare`` times.

        Args:
            images: float ``[3, H, W]`` tensors in [0, 1] (see :meth:`images`).

        Returns:
            per image ``{"boxes": [N, 4] xyxy input pixels, "scores": [N], "labels": [N]}``.
        """
        with self._autocast():
            return predict_by_size(self.net, [image.to(self.device) for image in images])

    def images(self, inputs) -> list[Tensor]:
        """``inputs`` (anything :meth:`predict` takes) decoded and converted as the validation
        loader converts them: the float ``[3, H, W]`` tensors :meth:`forward` takes."""
        return decode_images(inputs)

    @property
    def precision(self) -> str:
        """How the model runs on its current device (``auto`` resolved for that device)."""
        from lightdet.lightning.precision import resolve_precision

        device = "gpu" if self.device.type == "cuda" else "cpu"
        return str(resolve_precision(self.configured_precision, device)[0])

    def _autocast(self):
        dtype = _AUTOCAST.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _labels(self, classes: Iterable[str | int] | None) -> set[int] | None:
        if classes is None:
            return None
        labels = set()
        for c in [classes] if isinstance(classes, str | int) else classes:
            if isinstance(c, str) and c in self.class_names:
                labels.add(self.class_names.index(c) + 1)
            elif isinstance(c, int) and 1 <= c <= len(self.class_names):
                labels.add(c)
            else:
                raise ValueError(
                    f"predict: classes: {c!r} is not one of {self.class_names} "
                    f"(or a label 1..{len(self.class_names)})"
                )
        return labels

    def _detections(
        self,
        item: ImageInput,
        image: Tensor,
        out: dict,
        score_thresh: float,
        wanted: set[int] | None,
    ) -> Detections:
        (clean,), dropped = finite_predictions([out])  # what evaluation drops, dropped here too
        boxes, scores, labels = (clean[k].detach().cpu() for k in ("boxes", "scores", "labels"))
        keep = scores >= score_thresh
        if wanted is not None:
            keep &= torch.isin(labels, torch.tensor(sorted(wanted), dtype=labels.dtype))
        labels = labels[keep]
        return Detections(
            boxes=boxes[keep].float(),  # [N, 4]
            scores=scores[keep].float(),  # [N]
            labels=labels,  # [N]
            names=[class_name(self.class_names, int(v)) for v in labels],
            width=int(image.shape[2]),
            height=int(image.shape[1]),
            source=item.source,
            dropped=dropped,
        )


def _unreadable(item: ImageInput, why: str) -> Detections:
    return Detections(
        boxes=torch.zeros((0, 4)),
        scores=torch.zeros(0),
        labels=torch.zeros(0, dtype=torch.int64),
        names=[],
        width=0,
        height=0,
        source=item.source,
        error=why,
    )


def _top(found: Detections, max_detections: int | None) -> Detections:
    """The ``max_detections`` highest-scoring detections, highest first."""
    order = torch.argsort(found.scores, descending=True, stable=True)
    if max_detections is not None:
        order = order[: max(int(max_detections), 0)]
    return Detections(
        found.boxes[order],
        found.scores[order],
        found.labels[order],
        [found.names[i] for i in order.tolist()],
        found.width,
        found.height,
        found.source,
        dropped=found.dropped,
    )


def decode_images(inputs) -> list[Tensor]:
    """``inputs`` (anything :meth:`Detector.predict` takes) decoded and converted as the
    validation loader converts them: float ``[3, H, W]`` tensors in [0, 1], what a detector
    and its exported file take."""
    from lightdet.data.transforms import eval_preset

    convert = eval_preset()
    return [_tensor(item, convert) for item in image_inputs(inputs)]


def _tensor(item: ImageInput, convert) -> Tensor:
    """A float ``[3, H, W]`` tensor in [0, 1], converted as the validation loader converts."""
    pixels = item.load()
    if isinstance(pixels, Tensor):
        return pixels
    empty = np.zeros((0, 4), np.float32)
    return convert(image=pixels, bboxes=empty, labels=[], iscrowd=[])["image"]
