"""The augmentation preview (``make show-augment [AUG=zoom]``, ``python -m lightdet.show_augment``).

Writes a grid image: one row per training image, the original (as evaluated) first, then
``repeats`` augmented draws with their boxes, exactly as the model receives them. Prints the
path and how many boxes the draws dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, PngImagePlugin

from lightdet import outputs
from lightdet.guard import secure_config
from lightdet.runs.build import build_datamodule
from lightdet.viz import draw_targets, grid

log = logging.getLogger(__name__)
_STAMP_KEY, _STAMP = "Software", "lightdet show_augment"


def _is_our_grid(path: Path) -> bool:
    """Whether ``path`` is a grid an earlier run wrote (a PNG with our stamp)."""
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get(_STAMP_KEY) == _STAMP
    except (OSError, ValueError):
        return False


def _cell(drawn: np.ndarray, size: int) -> np.ndarray:
    """Fit a drawn sample into a size x size cell (aspect kept), so zoomed canvases line up."""
    pil = Image.fromarray(drawn)
    pil.thumbnail((size, size))
    cell = np.full((size, size, 3), 40, np.uint8)
    cell[: pil.height, : pil.width] = np.asarray(pil)
    return cell


def show_augment(cfg: DictConfig) -> Path:
    """Draw the grid; returns its path."""
    secure_config(cfg)
    path = Path(cfg.output)
    outputs.check_replaceable(path, "output", ours=_is_our_grid(path))
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    train = datamodule.datasets["train"]
    train.reseed(cfg.seed)
    original = type(train)(train.records, datamodule.eval_transform, train.max_image_pixels)
    cells, dropped, boxes = [], 0, 0
    for index in range(min(cfg.num_images, len(train))):
        image, target = original[index]
        cells.append(_cell(draw_targets(image, target, datamodule.class_names), cfg.cell_size))
        for _ in range(cfg.repeats):
            image, target = train[index]
            dropped += int(target["dropped_boxes"])
            boxes += len(train.records[index].boxes)
            cells.append(_cell(draw_targets(image, target, datamodule.class_names), cfg.cell_size))
    outputs.make_folders(path.parent, kind="augment")  # marked: the next grid may go there
    stamp = PngImagePlugin.PngInfo()
    stamp.add_text(_STAMP_KEY, _STAMP)  # so that the next run may replace it
    Image.fromarray(grid(cells, columns=cfg.repeats + 1)).save(path, pnginfo=stamp)
    log.info(
        "augmentation grid written to %s (first column: original); %d of %d boxes dropped "
        "by the draws",
        path,
        dropped,
        boxes,
    )
    return path
