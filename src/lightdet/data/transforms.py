"""Albumentations presets. Every preset ends in floats in [0, 1], CHW: the detectors normalize
and resize internally, so there is no ``Normalize`` here.

Boxes are ``pascal_voc`` (absolute xyxy); ``labels`` and ``iscrowd`` ride along as label fields so
they stay aligned with the boxes that survive a transform.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.pytorch import ToTensorV2


def _compose(transforms: list, *, min_visibility: float = 0.0) -> A.Compose:
    bbox_params = A.BboxParams(
        format="pascal_voc",
        label_fields=["labels", "iscrowd"],
        min_visibility=min_visibility,
        clip=True,  # boxes that stick out of the image are clipped, not rejected
        filter_invalid_bboxes=True,  # a box clipped to nothing is dropped instead of raising
    )
    with warnings.catch_warnings():  # the eval preset has no box transform, and needs none
        warnings.filterwarnings("ignore", message="Got processor for bboxes")
        return A.Compose(
            [*transforms, A.ToFloat(max_value=255.0), ToTensorV2()], bbox_params=bbox_params
        )


def eval_preset() -> A.Compose:
    """No augmentation: only the conversion to a float tensor."""
    return _compose([])


def train_preset(
    *,
    hflip_p: float = 0.5,
    brightness_contrast_p: float = 0.3,
    hue_saturation_p: float = 0.3,
    min_visibility: float = 0.3,
) -> A.Compose:
    """Horizontal flip and mild photometric distortion.

    Args:
        hflip_p: probability of a horizontal flip.
        brightness_contrast_p: probability of a random brightness/contrast change.
        hue_saturation_p: probability of a random hue/saturation/value change.
        min_visibility: boxes keeping less than this fraction of their area are dropped.
    """
    return _compose(
        [
            A.HorizontalFlip(p=hflip_p),
            A.RandomBrightnessContrast(p=brightness_contrast_p),
            A.HueSaturationValue(p=hue_saturation_p),
        ],
        min_visibility=min_visibility,
    )


class ZoomOut(A.DualTransform):
    """SSD's "expand": place the image at a random spot on a canvas up to ``max_scale`` times
    larger, filled with the image's mean colour, so objects become smaller (once the detector
    resizes the canvas to its input size).

    Args:
        max_scale: largest canvas side, as a multiple of the image side (scale drawn in [1, max]).
        p: probability of applying it.
    """

    def __init__(self, max_scale: float = 4.0, p: float = 0.5) -> None:
        super().__init__(p=p)
        if max_scale < 1:
            raise ValueError(f"ZoomOut: max_scale must be >= 1, got {max_scale}")
        self.max_scale = max_scale

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict[str, Any]:
        height, width = params["shape"][:2]
        scale = self.py_random.uniform(1.0, self.max_scale)
        canvas = (int(height * scale), int(width * scale))
        top = self.py_random.randint(0, canvas[0] - height)
        left = self.py_random.randint(0, canvas[1] - width)
        return {"canvas": canvas, "offset": (top, left), "source": (height, width)}

    def apply(self, img: np.ndarray, canvas, offset, source, **params) -> np.ndarray:
        out = np.empty((*canvas, *img.shape[2:]), dtype=img.dtype)
        out[...] = img.reshape(-1, *img.shape[2:]).mean(axis=0).astype(img.dtype)  # mean colour
        out[offset[0] : offset[0] + source[0], offset[1] : offset[1] + source[1]] = img
        return out

    def apply_to_bboxes(self, bboxes: np.ndarray, canvas, offset, source, **params) -> np.ndarray:
        out = bboxes.copy()  # normalized [N, 4 + extra] xyxy, relative to the source image
        out[:, [0, 2]] = (bboxes[:, [0, 2]] * source[1] + offset[1]) / canvas[1]
        out[:, [1, 3]] = (bboxes[:, [1, 3]] * source[0] + offset[0]) / canvas[0]
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("max_scale",)


class ZoomIn(BaseCrop):
    """SSD's random crop: choose a minimum IoU from ``min_ious`` (``None``: keep the whole image),
    then draw crops of ``min_scale``..1 of each side, aspect ratio 0.5..2, until one overlaps some
    object by at least that IoU and holds at least one object's centre. Boxes cut below the
    pipeline's ``min_visibility`` are dropped (and counted by the dataset).

    Args:
        min_ious: the minimum-IoU choices (SSD: 0.1, 0.3, 0.5, 0.7, 0.9 and no crop).
        min_scale: smallest crop side, as a fraction of the image side.
        max_trials: crops drawn per attempt before keeping the whole image.
        p: probability of applying it.
    """

    def __init__(
        self,
        min_ious: Sequence[float | None] = (None, 0.1, 0.3, 0.5, 0.7, 0.9),
        min_scale: float = 0.3,
        max_trials: int = 50,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.min_ious = tuple(min_ious)
        self.min_scale = min_scale
        self.max_trials = max_trials

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict[str, Any]:
        height, width = params["shape"][:2]
        whole = {"crop_coords": (0, 0, width, height)}
        scale = np.array([width, height, width, height], dtype=np.float64)
        boxes = np.asarray(data.get("bboxes", np.zeros((0, 4))))[:, :4] * scale  # [N, 4] pixels
        min_iou = self.py_random.choice(self.min_ious)
        if min_iou is None or len(boxes) == 0:
            return whole
        for _ in range(self.max_trials):
            w = self.py_random.uniform(self.min_scale, 1.0) * width
            h = self.py_random.uniform(self.min_scale, 1.0) * height
            if not 0.5 <= h / w <= 2.0:
                continue
            x, y = self.py_random.uniform(0, width - w), self.py_random.uniform(0, height - h)
            crop = np.array([x, y, x + w, y + h])
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
            inside = ((centres > crop[:2]) & (centres < crop[2:])).all(axis=1)
            if inside.any() and _iou(crop, boxes).max() >= min_iou:
                return {"crop_coords": tuple(int(round(v)) for v in crop)}
        return whole

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("min_ious", "min_scale", "max_trials")


def _iou(crop: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [N, 4] (xyxy)."""
    lt, rb = np.maximum(crop[:2], boxes[:, :2]), np.minimum(crop[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)  # [N]
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(crop[2:] - crop[:2]) - inter
    return inter / np.maximum(area, 1e-9)


def zoom_preset(
    *,
    zoom_out_p: float = 0.5,
    zoom_out_max_scale: float = 4.0,
    zoom_in_p: float = 1.0,
    zoom_in_min_scale: float = 0.3,
    hflip_p: float = 0.5,
    brightness_contrast_p: float = 0.5,
    hue_saturation_p: float = 0.5,
    min_visibility: float = 0.3,
) -> A.Compose:
    """The SSD paper's augmentation: photometric distortion, zoom out, zoom in, flip.

    Args:
        zoom_out_p, zoom_out_max_scale: :class:`ZoomOut`'s probability and largest canvas.
        zoom_in_p, zoom_in_min_scale: :class:`ZoomIn`'s probability and smallest crop side
            (its IoU choices include "no crop", as in SSD).
        hflip_p: probability of a horizontal flip.
        brightness_contrast_p, hue_saturation_p: photometric distortion probabilities.
        min_visibility: boxes keeping less than this fraction of their area are dropped.
    """
    return _compose(
        [
            A.RandomBrightnessContrast(p=brightness_contrast_p),
            A.HueSaturationValue(p=hue_saturation_p),
            ZoomOut(max_scale=zoom_out_max_scale, p=zoom_out_p),
            ZoomIn(min_scale=zoom_in_min_scale, p=zoom_in_p),
            A.HorizontalFlip(p=hflip_p),
        ],
        min_visibility=min_visibility,
    )
