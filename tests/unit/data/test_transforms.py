"""Augmentation presets: boxes stay valid and inside, labels stay aligned, zoom out shrinks."""

import numpy as np
import pytest
import torch

from lightdet.data.dataset import DetectionDataset
from lightdet.data.transforms import (
    ZoomIn,
    ZoomOut,
    _compose,
    eval_preset,
    train_preset,
    zoom_preset,
)
from lightdet.data.voc import read_voc
from tests.conftest import CLASSES

COLOURS = {1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}


def _sample(rng):
    """An image with 1-4 filled boxes, one per 64x48 quarter (no overlaps), each in its label's
    pure colour."""
    image = np.zeros((96, 128, 3), np.uint8)
    boxes, labels = [], []
    for cell in rng.permutation(4)[: rng.integers(1, 5)]:
        left, top = 64 * (cell % 2), 48 * (cell // 2)
        x1, y1 = left + rng.uniform(0, 40), top + rng.uniform(0, 28)
        x2, y2 = min(x1 + rng.uniform(6, 40), left + 64), min(y1 + rng.uniform(6, 30), top + 48)
        label = int(rng.integers(1, 4))
        image[int(np.ceil(y1)) : int(y2), int(np.ceil(x1)) : int(x2)] = COLOURS[label]
        boxes.append([x1, y1, x2, y2])
        labels.append(label)
    return image, np.array(boxes), np.array(labels)


@pytest.mark.parametrize("preset", ["zoom", "plain", "none"])
def test_boxes_stay_valid_inside_and_aligned_over_many_draws(preset):
    # no photometric change, so the colour under each box tells its label
    transform = {
        "zoom": zoom_preset(brightness_contrast_p=0, hue_saturation_p=0),
        "plain": train_preset(brightness_contrast_p=0, hue_saturation_p=0),
        "none": eval_preset(),
    }[preset]
    transform.set_random_seed(0)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        image, boxes, labels = _sample(rng)
        out = transform(
            image=image, bboxes=boxes, labels=labels, iscrowd=np.zeros(len(labels), bool)
        )
        img = out["image"]  # [3, H, W] float
        h, w = img.shape[1:]
        out_boxes, out_labels = np.asarray(out["bboxes"]).reshape(-1, 4), np.asarray(out["labels"])
        assert len(out_boxes) == len(out_labels) == len(out["iscrowd"])
        assert (out_boxes[:, 2] > out_boxes[:, 0]).all() and (
            out_boxes[:, 3] > out_boxes[:, 1]
        ).all()
        assert (out_boxes >= 0).all() and (out_boxes[:, [0, 2]] <= w).all()
        assert (out_boxes[:, [1, 3]] <= h).all()
        for box, label in zip(out_boxes, out_labels):
            x1, y1, x2, y2 = box
            if (x2 - x1) < 4 or (y2 - y1) < 4:
                continue
            # the box's inner pixels carry its label's colour (overlaps aside: majority vote)
            patch = img[:, int(y1) + 1 : int(y2) - 1, int(x1) + 1 : int(x2) - 1].reshape(3, -1)
            colour = torch.tensor(COLOURS[int(label)], dtype=torch.float32)[:, None] / 255
            match = (patch - colour).abs().max(dim=0).values < 0.1
            if match.numel():
                assert match.float().mean() > 0.8, (preset, box, label)
                checked += 1
    assert checked > 200


def test_zoom_out_shrinks_objects_on_average():
    transform = _compose([ZoomOut(max_scale=4.0, p=1.0)])
    transform.set_random_seed(0)
    rng = np.random.default_rng(1)
    before, after = [], []
    for _ in range(200):
        image, boxes, labels = _sample(rng)
        out = transform(
            image=image, bboxes=boxes, labels=labels, iscrowd=np.zeros(len(labels), bool)
        )
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) / (96 * 128)
        b = np.asarray(out["bboxes"])
        new_area = np.prod(b[:, 2:] - b[:, :2], axis=1) / np.prod(out["image"].shape[1:])
        before.append(area.mean())
        after.append(new_area.mean())
        assert len(b) == len(boxes)  # zoom out never loses a box
    ratio = np.mean(after) / np.mean(before)
    assert 0.1 < ratio < 0.5  # scale drawn in [1, 4]: E[1/s^2] = 0.25


def test_zoom_in_crops_keep_an_object_centre_and_count_what_they_drop(tiny_shapes):
    records = read_voc(tiny_shapes / "VOC", "train", CLASSES)
    dataset = DetectionDataset(
        records, _compose([ZoomIn(min_scale=0.3, p=1.0)], min_visibility=0.5)
    )
    dataset.reseed(0)
    cropped = dropped = 0
    for _epoch in range(5):
        for i in range(len(dataset)):
            image, target = dataset[i]
            cropped += tuple(image.shape[1:]) != (96, 96)
            dropped += int(target["dropped_boxes"])
            if len(records[i].boxes):
                assert len(target["boxes"]) >= 1  # a crop always keeps an object's centre
            assert int(target["dropped_boxes"]) == len(records[i].boxes) - len(target["boxes"])
    assert cropped > 0 and dropped > 0
