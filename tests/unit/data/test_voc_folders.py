"""A VOC folder of one's own: its classes are read from it, and it needs no split lists."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lightdet.data.records import AnnotationError
from lightdet.data.sources import VOCSource
from lightdet.data.voc import VOC_CLASSES
from lightdet.lightning.datamodule import DetectionDataModule

# what LabelImg saves: each XML beside its image, classes of the user's own
CELLS = ("WBC", "RBC", "Platelets")


def write_own_voc(root: Path, n: int = 10, *, flat: bool = True, classes=CELLS) -> Path:
    """``n`` 64x64 images with one or two boxes each; the classes cycle through ``classes``."""
    images = root if flat else root / "JPEGImages"
    annotations = root if flat else root / "Annotations"
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        stem = f"cells_{i:03d}"
        names = [classes[i % len(classes)], classes[(i + 1) % len(classes)]][: 1 + i % 2]
        image = Image.new("RGB", (64, 64), (30, 30, 30))
        objects = ""
        for k, name in enumerate(names):
            x = 6 + 28 * k
            ImageDraw.Draw(image).rectangle([x, 10, x + 20, 40], fill=(200, 60, 60))
            objects += (
                f"<object><name>{name}</name><difficult>0</difficult><bndbox>"
                f"<xmin>{x + 1}</xmin><ymin>11</ymin><xmax>{x + 21}</xmax><ymax>41</ymax>"
                "</bndbox></object>"
            )
        image.save(images / f"{stem}.jpg")
        (annotations / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>64</width>"
            f"<height>64</height><depth>3</depth></size>{objects}</annotation>"
        )
    return root


def _names(records) -> list[str]:
    return sorted(r.name for r in records)


@pytest.mark.parametrize("flat", [True, False], ids=["xml-beside-images", "no-split-lists"])
def test_a_folder_without_split_lists_gets_a_seeded_split_and_its_own_classes(tmp_path, flat):
    root = write_own_voc(tmp_path / "cells", n=10, flat=flat)
    source = VOCSource([str(root)])  # the config's defaults: train=trainval, val=test
    assert source.class_names == ["Platelets", "RBC", "WBC"]  # sorted, from the training split
    train, val = source.records("train"), source.records("val")
    assert (len(train), len(val)) == (8, 2)  # val_fraction 0.2
    assert not set(_names(train)) & set(_names(val))
    assert sorted(_names(train) + _names(val)) == [f"cells_{i:03d}" for i in range(10)]
    assert source.records("test") is None  # a test split needs its own list
    labels = {source.class_names[label - 1] for r in train + val for label in r.labels}
    assert labels == set(CELLS)
    assert all(Path(r.image_path).parent == (root if flat else root / "JPEGImages") for r in train)

    again = VOCSource(root)
    assert _names(again.records("val")) == _names(val)  # same files and seed: the same split
    other = VOCSource(root, split_seed=1, val_fraction=0.4)
    assert len(other.records("val")) == 4 and _names(other.records("val")) != _names(val)
    assert source.made_splits() == {str(root): {"train": _names(train), "val": _names(val)}}


def test_the_split_and_classes_go_into_the_checkpoint_state(tmp_path):
    root = write_own_voc(tmp_path / "cells", n=6)
    dm = DetectionDataModule(VOCSource(root), num_workers=0)
    state = dm.state_dict()
    assert state["class_names"] == ["Platelets", "RBC", "WBC"]
    (made,) = state["made_splits"].values()
    assert len(made["train"]) == 5 and len(made["val"]) == 1


def test_a_class_seen_only_in_validation_is_an_error_naming_it(tmp_path):
    root = write_own_voc(tmp_path / "cells", n=10)
    (val_stem,) = VOCSource(root, val_fraction=0.1).made_splits()[str(root)]["val"]
    xml = root / f"{val_stem}.xml"
    xml.write_text(
        xml.read_text().replace(
            "</annotation>",
            "<object><name>Neutrophil</name>"
            "<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
            "</object></annotation>",
        )
    )
    source = VOCSource(root, val_fraction=0.1)
    assert "Neutrophil" not in source.class_names
    with pytest.raises(
        AnnotationError,
        match=rf"{val_stem}\.xml: object\[\d\]\.name: unknown "
        r"class 'Neutrophil': not in the training split's objects",
    ):
        source.records("val")
    given = VOCSource(root, val_fraction=0.1, class_names=[*CELLS, "Neutrophil"])
    assert len(given.records("val")) == 1  # given names: today's behaviour


def test_a_class_named_background_in_the_data_is_refused_naming_the_file(tmp_path):
    root = write_own_voc(tmp_path / "cells", n=4, classes=("cell", "background"))
    with pytest.raises(AnnotationError, match=r"cells_00\d\.xml: object\[\d\]\.name.*label 0"):
        assert VOCSource(root, val_fraction=0.25).class_names


def test_vocdevkit_year_folders_keep_the_20_voc_classes(tmp_path):
    root = write_own_voc(
        tmp_path / "VOCdevkit" / "VOC2007", n=4, flat=False, classes=("person", "dog")
    )
    assert VOCSource(root).class_names == list(VOC_CLASSES)
    assert write_own_voc(tmp_path / "mine", n=4, flat=False, classes=("person", "dog"))
    assert VOCSource(tmp_path / "mine").class_names == ["dog", "person"]


def test_a_missing_split_list_names_the_lists_that_exist(tmp_path):
    root = write_own_voc(tmp_path / "cells", n=4, flat=False)
    lists = root / "ImageSets" / "Main"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("cells_000\ncells_001\n")
    (lists / "val.txt").write_text("cells_002\n")
    source = VOCSource(root)  # asks for trainval and test
    with pytest.raises(
        FileNotFoundError,
        match=r"data.source.train=trainval: .*ImageSets/Main/"
        r"trainval.txt \(lists there: train, val\)",
    ):
        source.records("train")
    named = VOCSource(root, train="train", val="val")
    assert _names(named.records("train")) == ["cells_000", "cells_001"]
    assert _names(named.records("val")) == ["cells_002"] and named.made_splits() == {}


def test_a_folder_with_nothing_of_voc_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"photos: not a VOC folder"):
        VOCSource(tmp_path / "photos").prepare()


@pytest.mark.parametrize("annotations,images", [("annots", "images"), ("annotations", "images")])
def test_the_layouts_datasets_are_downloaded_in_are_read(tmp_path, annotations, images):
    """Issue 34: a public dataset as downloaded (``annots/`` with the XMLs, ``images/`` with
    the JPEGs) was refused as "not a VOC folder" although the roots were set."""
    root = write_own_voc(tmp_path / "download", n=10)
    (root / annotations).mkdir()
    (root / images).mkdir()
    for path in list(root.iterdir()):
        if path.suffix == ".xml":
            path.rename(root / annotations / path.name)
        elif path.suffix == ".jpg":
            path.rename(root / images / path.name)
    source = VOCSource([str(root)])
    source.prepare()
    assert source.class_names == ["Platelets", "RBC", "WBC"]
    train, val = source.records("train"), source.records("val")
    assert (len(train), len(val)) == (8, 2)
    assert all(Path(r.image_path).parent == root / images for r in train + val)


def test_a_folder_per_split_is_read_as_its_splits(tmp_path):
    """Roboflow's VOC export: ``train/``, ``valid/``, ``test/``, each XML beside its image."""
    root = tmp_path / "roboflow"
    for split, n in (("train", 6), ("valid", 3), ("test", 2)):
        write_own_voc(root / split, n=n)
    source = VOCSource(root)
    source.prepare()
    sizes = {s: len(source.records(s) or []) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 3, "test": 0}  # test=null: the config asks for none
    assert [Path(r.image_path).parent.name for r in source.records("val")] == ["valid"] * 3
    assert source.made_splits() == {}  # nothing drawn: the folders are the splits
    assert len(VOCSource(root, test="test").records("test")) == 2


def test_a_folder_that_is_not_voc_says_what_it_holds(tmp_path):
    root = tmp_path / "download"
    (root / "pictures").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "pictures" / "a.jpg")
    (root / "notes.txt").write_text("labels come later\n")
    with pytest.raises(FileNotFoundError) as caught:
        VOCSource(root).prepare()
    message = str(caught.value)
    assert message.startswith(f"{root}: not a VOC folder: found notes.txt, pictures/ (.jpg); ")
    assert "annots/" in message and "train/ valid/ test/" in message
