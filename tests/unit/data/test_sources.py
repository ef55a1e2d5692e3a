"""Sources: the same generated shapes read back through the VOC, COCO and YOLO readers agree
box for box; missing folders are named with the key to set."""

import numpy as np
import pytest

from lightdet.data.sources import COCOSource, ShapesSource, VOCSource, YOLOSource
from tests.conftest import CLASSES, TINY


def _by_image(records):
    return {
        r.image_path.rsplit("/", 1)[-1] if isinstance(r.image_path, str) else r.image_path.name: r
        for r in records
    }


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_the_three_layouts_agree(tiny_shapes, split):
    sources = {f: ShapesSource(tiny_shapes, format=f, **TINY) for f in ("voc", "coco", "yolo")}
    read = {f: _by_image(s.records(split)) for f, s in sources.items()}
    assert len(read["voc"]) == TINY[f"num_{split}"]
    assert set(read["voc"]) == set(read["coco"]) == set(read["yolo"])
    for name, voc in read["voc"].items():
        for other in (read["coco"][name], read["yolo"][name]):
            assert other.labels.tolist() == voc.labels.tolist()
            # VOC files hold 2 decimals, YOLO normalized centres 6: equal to that rounding
            np.testing.assert_allclose(other.boxes, voc.boxes, atol=0.006)
            assert (other.width, other.height) == (voc.width, voc.height) == (96, 96)
    assert all(s.class_names == list(CLASSES) for s in sources.values())


def test_category_maps_say_what_produced_the_labels(tiny_shapes):
    voc, coco, yolo = (ShapesSource(tiny_shapes, format=f, **TINY) for f in ("voc", "coco", "yolo"))
    assert voc.category_map == {"circle": 1, "square": 2, "triangle": 3}
    assert coco.category_map == {1: 1, 2: 2, 3: 3}  # COCO category id -> label
    assert yolo.category_map == {0: 1, 1: 2, 2: 3}  # YOLO class index -> label


def test_a_split_that_is_not_configured_is_none(tiny_shapes):
    source = VOCSource(
        tiny_shapes / "VOC", class_names=CLASSES, train="train", val="val", test=None
    )
    assert source.records("test") is None
    assert len(source.records("val")) == TINY["num_val"]


def test_missing_folders_name_the_key_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a VOC folder: .*data\.source\.roots"):
        VOCSource(tmp_path).prepare()
    with pytest.raises(
        FileNotFoundError,
        match=r"instances_train2017\.json: not found; set "
        r"data\.source\.root",
    ):
        COCOSource(tmp_path).prepare()
    with pytest.raises(FileNotFoundError, match=r"not a YOLO folder .*data\.source\.root"):
        YOLOSource(tmp_path).prepare()
    with pytest.raises(ValueError, match=r"data\.source\.format: expected voc, coco or yolo"):
        ShapesSource(tmp_path, format="kitti")


def test_each_shapes_parameter_set_has_its_own_folder_never_rewritten(tmp_path):
    from tests.conftest import snapshot

    small = {"num_train": 4, "num_val": 2, "image_size": 96, "max_object_size": 48.0}
    first = ShapesSource(tmp_path / "shapes", **small)
    first.prepare()
    before = snapshot(first.folder)
    assert first.folder.parent == tmp_path / "shapes"
    assert first.folder.name.startswith("4-2-0-96px-seed0-")
    other = ShapesSource(tmp_path / "shapes", **{**small, "num_train": 6})  # another run's data
    other.prepare()
    assert other.folder != first.folder and other.folder.name.startswith("6-2-0-96px-seed0-")
    assert len(other.records("train")) == 6 and len(first.records("train")) == 4
    assert snapshot(first.folder) == before  # not rewritten, byte for byte
    again = ShapesSource(tmp_path / "shapes", **small)
    assert again.folder == first.folder  # the same parameters: the same folder, reused
