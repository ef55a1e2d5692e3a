import numpy as np
import torch

from lightdet.viz import GT_COLOUR, class_colour, draw_boxes, draw_targets, grid


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
    assert tiled.shape == (2 * drawn.shape[0], 4 * drawn.shape[1], 3)
