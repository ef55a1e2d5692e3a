"""DetectionDataModule on the tiny shapes data: splits, class identity, the loaders' contract."""

import pytest
import torch

from lightdet.data.sources import ShapesSource
from lightdet.lightning.datamodule import DetectionDataModule
from tests.conftest import CLASSES, TINY


@pytest.fixture
def datamodule(tiny_shapes):
    dm = DetectionDataModule(ShapesSource(tiny_shapes, **TINY), batch_size=4, num_workers=0)
    dm.prepare_data()
    return dm


def test_classes_and_splits(datamodule):
    assert datamodule.class_names == list(CLASSES) and datamodule.num_classes == 4
    datamodule.setup("fit")
    assert {s: len(d) for s, d in datamodule.datasets.items()} == {"train": 16, "val": 8}
    assert not datamodule.has_split("test")
    datamodule.setup("test")
    assert datamodule.has_split("test") and len(datamodule.datasets["test"]) == TINY["num_test"]
    assert list(datamodule.checks) == ["train", "val", "test"]  # each split checked once
    assert all(not c.skipped for c in datamodule.checks.values())  # the shapes data is clean


def test_loaders_follow_the_data_contract(datamodule):
    datamodule.setup("fit")
    train = list(datamodule.train_dataloader())
    assert len(train) == 16 // 4 and all(len(images) == 4 for images, _ in train)
    images, targets = train[0]
    assert images[0].dtype == torch.float32 and images[0].shape == (3, 96, 96)
    assert set(targets[0]) >= {"boxes", "labels", "iscrowd", "image_id"}
    assert targets[0]["boxes"].dtype == torch.float32 and targets[0]["labels"].dtype == torch.int64
    val_ids = [int(t["image_id"]) for _, ts in datamodule.val_dataloader() for t in ts]
    assert val_ids == [r.image_id for r in datamodule.datasets["val"].records]  # in order
    assert len(val_ids) == 8


def test_training_order_is_seeded_and_changes_per_epoch(datamodule):
    datamodule.setup("fit")

    def order():
        torch.manual_seed(3)
        loader = datamodule.train_dataloader()
        epochs = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            epochs.append([int(t["image_id"]) for _, ts in loader for t in ts])
        return epochs

    first, again = order(), order()
    assert first == again
    assert first[0] != first[1] and sorted(first[0]) == sorted(first[1])


def test_a_split_that_was_not_indexed_is_named(datamodule):
    with pytest.raises(RuntimeError, match=r"no 'test' split"):
        datamodule.test_dataloader()


def test_an_evaluation_split_holding_training_images_is_said_and_counted(tiny_shapes):
    """COCO data whose val split is the training split: the run says so, with the count, and
    the data checks (logged, and sent to ClearML) hold it; nothing is refused."""
    from lightdet.data.sources import COCOSource

    source = COCOSource(tiny_shapes / "COCO", train="train", val="train")
    dm = DetectionDataModule(source, batch_size=4, num_workers=0)
    with pytest.warns(UserWarning, match=r"data: 16 of 16 val images are training images too"):
        dm.setup("fit")
    assert ["val", "noted", "shared_with_train", 16] in dm.check_rows()
    assert not any(row[2] == "shared_with_train" for row in dm.check_rows() if row[0] == "train")


def test_splits_without_common_images_say_nothing(datamodule, recwarn):
    datamodule.setup("fit")
    assert not [w for w in recwarn if "training images too" in str(w.message)]
    assert not any(row[2] == "shared_with_train" for row in datamodule.check_rows())
