"""What :meth:`lightdet.Detector.predict` accepts, turned into the images the detectors take.

A path (an image file or a folder of them), a list of paths, a PIL image, a numpy ``[H, W, 3]``
uint8 RGB array or a tensor (float ``[3, H, W]`` in [0, 1], or uint8). Files and PIL images are
made upright by their EXIF orientation, as the data readers do (:mod:`lightdet.data.images`),
so boxes refer to the image as it is displayed. Files are read only when their batch is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from lightdet.data.images import load_rgb, to_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageInput:
    """One image to predict on: where it came from (a path, or None) and how to get its pixels
    (upright uint8 ``[H, W, 3]`` RGB, or a float ``[3, H, W]`` tensor in [0, 1])."""

    source: str | None
    load: Callable[[], np.ndarray | torch.Tensor]


def image_inputs(inputs) -> list[ImageInput]:
    """Every image in ``inputs``, in order (a folder's images sorted by name).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without images.
        TypeError, ValueError: an object that is not an image, naming its type or shape.
    """
    if isinstance(inputs, str | os.PathLike | Image.Image | np.ndarray | torch.Tensor):
        inputs = [inputs]
    if not isinstance(inputs, Iterable):
        raise TypeError(f"predict: expected images, paths or a folder, got {type(inputs).__name__}")
    found: list[ImageInput] = []
    for index, item in enumerate(inputs):
        found += _expand(item, f"inputs[{index}]")
    return found


def _expand(item, where: str) -> list[ImageInput]:
    if isinstance(item, ImageInput):  # expanded already (a caller that counted them first)
        return [item]
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
            return [_file(p) for p in files]
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such image file or folder")
        return [_file(path)]
    if isinstance(item, Image.Image):
        upright = to_rgb(ImageOps.exif_transpose(item))
        return [ImageInput(getattr(item, "filename", None) or None, lambda: upright)]
    if isinstance(item, np.ndarray):
        array = _check_array(item, where)
        return [ImageInput(None, lambda: array)]
    if isinstance(item, torch.Tensor):
        tensor = _check_tensor(item, where)
        return [ImageInput(None, lambda: tensor)]
    raise TypeError(
        f"predict: {where}: expected a path, PIL image, numpy array or tensor, "
        f"got {type(item).__name__}"
    )


def _file(path: Path) -> ImageInput:
    return ImageInput(str(path), lambda: load_rgb(path))


def _check_array(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"predict: {where}: expected a uint8 RGB array [H, W, 3], got "
            f"{array.dtype} {list(array.shape)}"
        )
    return np.ascontiguousarray(array)


def _check_tensor(tensor: torch.Tensor, where: str) -> np.ndarray | torch.Tensor:
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"predict: {where}: expected a tensor [3, H, W], got {list(tensor.shape)}")
    if tensor.dtype == torch.uint8:  # converted as a file's pixels are
        return np.ascontiguousarray(tensor.permute(1, 2, 0).cpu().numpy())
    if not tensor.is_floating_point():
        raise ValueError(f"predict: {where}: expected a float or uint8 tensor, got {tensor.dtype}")
    low, high = float(tensor.min()), float(tensor.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"predict: {where}: a float tensor must hold values in [0, 1] (the data "
            f"contract), got [{low:.3g}, {high:.3g}]"
        )
    return tensor.float()
