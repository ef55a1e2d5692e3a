import numpy as np
import torch

from lightdet.viz import (
    BACKGROUND,
    GT_COLOUR,
    class_colour,
    draw_boxes,
    draw_targets,
    grid,
    thumbnail_size,
)


def test_ground_truth_and_predictions_are_drawn_at_the_right_place():
    image = torch.zeros(3, 96, 128)
    target = {"boxes": torch.tensor([[10.0, 20.0, 50.0, 60.0]]), "labels": torch.tensor([1])}
    pred = {
        "boxes": torch.tensor([[60.0, 10.0, 100.0, 80.0], [0.0, 0.0, 5.0, 5.0]]),
        "labels": torch.tensor([2, 1]),
        "scores": torch.tensor([0.9, 0.1]),
    }
    out = draw_boxes(image, ["a", "b"], target, pred, score_threshold=0.3)
    scale = 320 / 96  # upscaled so the shorter side is 320 px
    assert out.shape == (320, round(128 * scale), 3) and out.dtype == np.uint8
    x1, y1 = round(10 * scale), round(20 * scale)
    assert tuple(out[y1 + 5, x1]) == GT_COLOUR  # left edge of the ground truth
    assert tuple(out[round(40 * scale), round(100 * scale)]) == class_colour(2)  # the prediction
    assert tuple(out[2, 2]) == (0, 0, 0)  # the 0.1-score prediction is not drawn


def test_targets_and_grid():
    image = torch.ones(3, 64, 64)
    drawn = draw_targets(
        image,
        {"boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0]]), "labels": torch.tensor([3])},
        ["a", "b", "c"],
    )
    tiled = grid([drawn] * 5, columns=4)
    assert tiled.shape == (2 * drawn.shape[0] + 4, 4 * drawn.shape[1] + 3 * 4, 3)  # 4 px gaps


def test_thumbnails_of_mixed_sizes_fill_cells_of_one_size():
    """A grid of photos of different sizes: each scaled into one cell size and centred (it was
    drawn at its own size, top-left in a cell as large as the largest: mostly black)."""
    sizes = [(640, 480), (320, 240), (1280, 960), (480, 640)]  # (width, height)
    cell = thumbnail_size(sizes)
    assert cell == (360, 270)  # the median aspect ratio, 4:3
    images = [torch.full((3, h, w), 1.0) for w, h in sizes]  # white photos
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([1])}
    drawn = [draw_boxes(image, ["a"], target, fit=cell) for image in images]
    assert [d.shape[:2] for d in drawn[:3]] == [(270, 360)] * 3  # landscape photos fill the cell
    assert drawn[3].shape[:2] == (270, round(480 * 270 / 640))  # a portrait one fits its height
    tiled = grid(drawn, columns=4)
    assert tiled.shape == (270, 4 * 360 + 3 * 4, 3)
    white = (tiled == 255).all(axis=2).mean()
    assert white > 0.85  # was ~0.4: mostly padding
    portrait_left = 3 * (360 + 4) + (360 - drawn[3].shape[1]) // 2
    assert tuple(tiled[135, portrait_left - 1]) == (BACKGROUND,) * 3  # centred, grey beside it
    assert tuple(tiled[135, portrait_left + 5]) == (255, 255, 255)
