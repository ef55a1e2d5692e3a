"""Albumentations presets. Every preset ends in floats in [0, 1], CHW: the detectors normalize
and resize internally, so there is no ``Normalize`` here.

Boxes are ``pascal_voc`` (absolute xyxy); ``labels`` and ``iscrowd`` ride along as label fields so
they stay aligned with the boxes that survive a transform.
"""

from __future__ import annotations

import warnings

import albumentations as A
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
