import numpy as np
import torch

from lightdet.data.dataset import DetectionDataset, collate_detection
from lightdet.data.records import DetectionRecord
from lightdet.data.sources import ShapesSource
from lightdet.data.transforms import eval_preset, train_preset
from tests.conftest import TINY


def test_items_follow_the_data_contract(tiny_shapes):
    source = ShapesSource(
        tiny_shapes,
        format="voc",
        num_train=16,
        num_val=8,
        num_test=4,
        image_size=96,
        max_object_size=48.0,
    )
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
    source = ShapesSource(
        tiny_shapes,
        format="voc",
        num_train=16,
        num_val=8,
        num_test=4,
        image_size=96,
        max_object_size=48.0,
    )
    dataset = DetectionDataset(source.records("train"), train_preset())

    def draw(seed):
        dataset.reseed(seed)
        return torch.stack([dataset[i][0] for i in range(8)])

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))  # e.g. two loader workers


def _same_batch(a, b):
    (images_a, targets_a), (images_b, targets_b) = a, b
    assert len(images_a) == len(images_b) and len(targets_a) == len(targets_b)
    for x, y in zip(images_a, images_b):
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
    for x, y in zip(targets_a, targets_b):
        assert list(x) == list(y)  # the same keys, in the same order
        for key in x:
            assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape
            assert torch.equal(x[key], y[key])


def test_a_batch_crosses_processes_as_one_buffer_per_dtype(tiny_shapes):
    """A batch from a loader worker arrives equal to the one made in-process (images of two
    sizes, an image without boxes, 0-d ids), its tensors views of one buffer per dtype."""
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401  (registers the shared-memory tensor reductions)
    from torch.utils.data import DataLoader

    records = ShapesSource(tiny_shapes, **TINY).records("train")
    dataset = DetectionDataset(records[:6], eval_preset())
    items = [dataset[i] for i in range(6)]
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "iscrowd": torch.zeros(0, dtype=torch.bool),
        "image_id": torch.tensor(7),
    }
    items[1] = (torch.rand(3, 40, 56), empty)
    made = collate_detection(items)
    sent = pickle.loads(ForkingPickler.dumps(made))  # what a worker's queue does
    _same_batch(made, sent)
    images, targets = sent
    storages = {t.untyped_storage().data_ptr() for t in images}
    assert len(storages) == 1  # one float buffer for the six images
    int64 = {
        t[k].untyped_storage().data_ptr() for t in targets for k in t if t[k].dtype == torch.int64
    }
    assert len(int64) == 1  # labels, ids and counts of every image: one buffer
    assert isinstance(sent, tuple) and sent[1][1]["image_id"].item() == 7

    loader = DataLoader(dataset, batch_size=3, num_workers=1, collate_fn=collate_detection)
    in_process = DataLoader(dataset, batch_size=3, num_workers=0, collate_fn=collate_detection)
    batches = list(loader)
    assert len(batches) == 2
    for a, b in zip(batches, in_process):
        _same_batch(a, b)
