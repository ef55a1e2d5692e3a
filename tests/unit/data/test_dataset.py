import numpy as np
import torch

from lightdet.data.dataset import DetectionDataset, collate_detection
from lightdet.data.records import DetectionRecord
from lightdet.data.sources import ShapesSource
from lightdet.data.transforms import eval_preset, train_preset


def test_items_follow_the_data_contract(tiny_shapes):
    source = ShapesSource(tiny_shapes, format="voc", num_train=16, num_val=8, num_test=4, image_size=96,
                          max_object_size=48.0)  # fmt: skip
    dataset = DetectionDataset(source.records("train"), train_preset())
    for i in range(len(dataset)):
        image, target = dataset[i]
        assert image.dtype == torch.float32 and image.shape == (3, 96, 96)
        assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.05
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
        assert target["labels"].dtype == torch.int64
        assert len(target["labels"]) == len(target["boxes"]) == len(target["iscrowd"])
        if len(target["labels"]):
            assert target["labels"].min() >= 1 and target["labels"].max() <= 3
    images, targets = collate_detection([dataset[0], dataset[1]])
    assert len(images) == len(targets) == 2


def test_image_whose_boxes_all_drop_gives_typed_empty_target(tmp_path):
    from PIL import Image

    path = tmp_path / "x.jpg"
    Image.new("RGB", (50, 40), (10, 20, 30)).save(path)
    # a box entirely outside the image: clipped away by albumentations
    record = DetectionRecord(path, 1, 50, 40, np.array([[60.0, 50.0, 70.0, 60.0]]), np.array([2]))
    image, target = DetectionDataset([record], eval_preset())[0]
    assert image.shape == (3, 40, 50)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64


def test_flip_keeps_labels_aligned_with_boxes(tmp_path):
    from PIL import Image

    path = tmp_path / "x.jpg"
    Image.new("RGB", (100, 50)).save(path)
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [60.0, 20.0, 100.0, 50.0]])
    record = DetectionRecord(path, 1, 100, 50, boxes, np.array([1, 3]))
    flip = train_preset(hflip_p=1.0, brightness_contrast_p=0.0, hue_saturation_p=0.0)
    _, target = DetectionDataset([record], flip)[0]
    assert target["labels"].tolist() == [1, 3]
    expected = torch.tensor([[90.0, 0.0, 100.0, 10.0], [0.0, 20.0, 40.0, 50.0]])
    torch.testing.assert_close(target["boxes"], expected, atol=1e-4, rtol=0)


def test_reseeding_makes_augmentations_reproducible_and_distinct(tiny_shapes):
    """albumentations ignores global seeds: the dataset's reseed is what controls it."""
    source = ShapesSource(tiny_shapes, format="voc", num_train=16, num_val=8, num_test=4,
                          image_size=96, max_object_size=48.0)  # fmt: skip
    dataset = DetectionDataset(source.records("train"), train_preset())

    def draw(seed):
        dataset.reseed(seed)
        return torch.stack([dataset[i][0] for i in range(8)])

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))  # e.g. two loader workers
