"""Drawing boxes on images: debug images in ClearML, augmentation previews, predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from lightdet.data.classes import class_name

GT_COLOUR = (0, 230, 0)
BACKGROUND = 48  # grid padding: dark grey
_PALETTE = [
    (230, 25, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (240, 50, 230),
    (70, 240, 240),
    (210, 245, 60),
    (250, 190, 190),
    (0, 128, 128),
    (170, 110, 40),
]


def class_colour(label: int) -> tuple[int, int, int]:
    return _PALETTE[(int(label) - 1) % len(_PALETTE)]


def to_pil(
    image: Tensor, min_side: int = 320, fit: tuple[int, int] | None = None
) -> tuple[Image.Image, float]:
    """A float [3,H,W] tensor in [0,1] as a PIL image, upscaled so labels stay readable; or,
    with ``fit`` (width, height), scaled up or down to the largest size inside it."""
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(
        np.uint8
    )
    pil = Image.fromarray(array)
    if fit is not None:
        scale = min(fit[0] / pil.width, fit[1] / pil.height)
    else:
        scale = max(1.0, min_side / min(pil.size))
    if scale != 1.0:
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        pil = pil.resize(size, Image.NEAREST if scale > 1 else Image.BILINEAR)
    return pil, scale


def draw_boxes(
    image: Tensor,
    class_names: Sequence[str],
    target: dict[str, Tensor] | None = None,
    prediction: dict[str, Tensor] | None = None,
    score_threshold: float = 0.3,
    min_side: int = 320,
    fit: tuple[int, int] | None = None,
) -> np.ndarray:
    """Ground truth (green, thin) and predictions above ``score_threshold`` (class colour, with
    name and score) drawn on ``image``, upscaled to ``min_side`` when smaller (or scaled into
    ``fit``, width and height: a thumbnail, its labels drawn at their full size); returns uint8
    [H', W', 3]."""
    pil, scale = to_pil(image, min_side, fit)
    draw = ImageDraw.Draw(pil)
    if target is not None:
        for box in target["boxes"].tolist():
            draw.rectangle(_ordered(box, scale), outline=GT_COLOUR, width=2)
    if prediction is not None:
        keep = prediction["scores"] >= score_threshold
        for box, label, score in zip(
            prediction["boxes"][keep].tolist(),
            prediction["labels"][keep].tolist(),
            prediction["scores"][keep].tolist(),
        ):
            _labelled_box(
                draw,
                _ordered(box, scale),
                label,
                f"{class_name(class_names, label)} {score:.2f}",
            )
    return np.asarray(pil)


def draw_targets(
    image: Tensor, target: dict[str, Tensor], class_names: Sequence[str]
) -> np.ndarray:
    """A training sample as the model sees it: boxes in class colours with class names."""
    pil, scale = to_pil(image)
    draw = ImageDraw.Draw(pil)
    for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
        _labelled_box(draw, _ordered(box, scale), label, class_name(class_names, label))
    return np.asarray(pil)


def thumbnail_size(sizes: Sequence[tuple[int, int]], width: int = 360) -> tuple[int, int]:
    """One cell size (width, height) for images of these (width, height): ``width`` wide, the
    images' median aspect ratio, so most of them fill their cell."""
    ratios = sorted(h / w for w, h in sizes if w > 0 and h > 0) or [1.0]
    return width, max(1, round(width * ratios[len(ratios) // 2]))


def grid(images: Sequence[np.ndarray], columns: int = 4, gap: int = 4) -> np.ndarray:
    """Tile images in cells of one size (the largest image's), each centred in its cell, with
    ``gap`` pixels between cells; the background is dark grey, not black, so that an image's
    own dark edges stay visible."""
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    rows, cols = -(-len(images) // columns), min(columns, len(images))
    canvas = np.full(
        (rows * height + (rows - 1) * gap, cols * width + (cols - 1) * gap, 3),
        BACKGROUND,
        np.uint8,
    )
    for k, img in enumerate(images):
        r, c = divmod(k, columns)
        top = r * (height + gap) + (height - img.shape[0]) // 2
        left = c * (width + gap) + (width - img.shape[1]) // 2
        canvas[top : top + img.shape[0], left : left + img.shape[1]] = img
    return canvas


def _ordered(box: Sequence[float], scale: float = 1.0) -> list[float]:
    """``[x1, y1, x2, y2]`` scaled, corners ordered: PIL refuses an inverted box, which a
    diverging model can predict."""
    x1, y1, x2, y2 = (v * scale for v in box)
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def _labelled_box(draw: ImageDraw.ImageDraw, box: list, label: int, text: str) -> None:
    colour = class_colour(label)
    draw.rectangle(box, outline=colour, width=2)
    x, y = box[0], max(0, box[1] - 11)
    left, top, right, bottom = draw.textbbox((x, y), text)
    draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=colour)
    draw.text((x, y), text, fill=(255, 255, 255))
