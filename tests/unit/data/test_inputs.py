"""What predict accepts: each kind of input becomes one image, in order; bad ones are named."""

import numpy as np
import pytest
import torch
from PIL import Image

from lightdet.data.inputs import image_inputs


def test_kinds_order_and_folders(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.JPG", "a.png", "c.webp"):
        Image.new("RGB", (8, 6), (200, 0, 0)).save(folder / name)
    (folder / "labels.txt").write_text("x")
    array = np.zeros((6, 8, 3), np.uint8)
    items = image_inputs([folder, array, torch.rand(3, 6, 8)])
    assert [i.source and i.source.rsplit("/", 1)[-1] for i in items] == [
        "a.png",
        "b.JPG",
        "c.webp",
        None,
        None,
    ]
    pixels = items[0].load()
    assert pixels.shape == (6, 8, 3) and pixels.dtype == np.uint8 and pixels[0, 0, 0] == 200
    assert len(image_inputs(folder / "a.png")) == 1


def test_a_grayscale_or_palette_pil_image_becomes_rgb():
    (item,) = image_inputs(Image.new("L", (5, 4), 77))
    assert item.load().shape == (4, 5, 3) and int(item.load()[0, 0, 2]) == 77


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (
            np.zeros((6, 8), np.uint8),
            ValueError,
            r"inputs\[0\]: expected a uint8 RGB array \[H, W, 3\], got uint8 \[6, 8\]",
        ),
        (np.zeros((6, 8, 3), np.float32), ValueError, r"got float32 \[6, 8, 3\]"),
        (torch.rand(6, 8, 3), ValueError, r"expected a tensor \[3, H, W\], got \[6, 8, 3\]"),
        (torch.rand(3, 6, 8) * 255, ValueError, r"float tensor must hold values in \[0, 1\]"),
        (42, TypeError, r"expected images, paths or a folder, got int"),
        (
            [b"bytes"],
            TypeError,
            r"inputs\[0\]: expected a path, PIL image, numpy array or tensor, got bytes",
        ),
    ],
)
def test_bad_inputs_are_named(bad, error, message):
    with pytest.raises(error, match=message):
        image_inputs(bad)


def test_missing_paths_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg: no such image file or folder"):
        image_inputs(tmp_path / "nope.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no images"):
        image_inputs(tmp_path / "empty")
