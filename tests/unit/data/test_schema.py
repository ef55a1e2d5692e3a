"""Every field every reader uses, driven with generated malformed variants: missing, wrong
type, NaN, inf, negative, huge, wrong container, empty. Each variant either indexes (what is
wrong skipped or fixed, and counted) or ends in one :class:`AnnotationError` naming the file
and the field; never a raw Python exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightdet.data.records import AnnotationError
from lightdet.data.sources import COCOSource, VOCSource, YOLOSource
from lightdet.lightning.datamodule import DetectionDataModule

CLASSES = ["circle", "square"]
_MISSING = object()
# (name, value) of every variant: what a hostile or broken tool can write into a JSON field
JSON_VARIANTS = [
    ("missing", _MISSING),
    ("null", None),
    ("text", "sixty-four"),
    ("empty", ""),
    ("true", True),
    ("fraction", 1.5),
    ("float_id", 1.0),
    ("nan", float("nan")),
    ("inf", float("inf")),
    ("negative", -1),
    ("huge", 10**30),
    ("list", []),
    ("object", {}),
    ("nested", [[1, 2]]),
]
TEXT_VARIANTS = [
    ("missing", None),
    ("empty", ""),
    ("text", "sixty-four"),
    ("nan", "nan"),
    ("inf", "inf"),
    ("negative", "-1"),
    ("huge", "1e30"),
    ("fraction", "1.5"),
    ("container", "<x>1</x>"),
]


def _image(path: Path, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)


def _index(source) -> None:
    DetectionDataModule(source, num_workers=0, policy={"max_skip_fraction": 1.0}).setup("fit")


def _outcome(run, file_name: str, fields: tuple[str, ...], variant: str) -> str:
    """Index; a refusal must be an AnnotationError naming the file and one of ``fields``."""
    try:
        run()
    except AnnotationError as err:
        message = str(err)
        assert file_name in message, f"{variant}: the file is not named: {message}"
        assert any(f in message for f in fields), f"{variant}: no field of {fields}: {message}"
        return "refused"
    return "indexed"


# --- COCO --------------------------------------------------------------------------------------


def _coco_data() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 4, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 5, "bbox": [8, 8, 10, 12], "iscrowd": 0},
        ],
        "categories": [{"id": 3, "name": "circle"}, {"id": 5, "name": "square"}],
    }


# field path -> the names an error about it may carry (a changed id is named where it is used)
COCO_FIELDS = {
    # an empty or broken list: its own field, or the first annotation that points into it
    "images": ("images", "annotations[0].image_id"),
    "annotations": ("annotations",),
    "categories": ("categories", "annotations[0].category_id"),
    "images.0": ("images[0]", "annotations[0].image_id"),
    "images.0.id": ("images[0].id", "annotations[0].image_id"),
    "images.0.file_name": ("images[0].file_name", "a.jpg"),
    # a whole number that is not the image's: the size check names both
    "images.0.width": ("images[0].width", "images[0] (a.jpg): size: annotated"),
    "images.0.height": ("images[0].height", "images[0] (a.jpg): size: annotated"),
    "categories.0": ("categories[0]", "annotations[0].category_id"),
    "categories.0.id": ("categories[0].id", "annotations[0].category_id", "categories"),
    "categories.0.name": ("categories[0].name", "categories (by id), name"),
    "annotations.0": ("annotations[0]",),
    "annotations.0.id": ("annotations[0].id",),
    "annotations.0.image_id": ("annotations[0].image_id",),
    "annotations.0.category_id": ("annotations[0].category_id",),
    "annotations.0.bbox": ("annotations[0].bbox",),
    "annotations.0.bbox.2": ("annotations[0].bbox",),
    "annotations.0.iscrowd": ("annotations[0].iscrowd",),
}


def _set(data, path: str, value):
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key = int(last) if isinstance(node, list) else last
    if value is _MISSING:
        del node[key]
    else:
        node[key] = value


@pytest.mark.parametrize("path", list(COCO_FIELDS))
def test_every_coco_field_malformed(tmp_path, path):
    for name in ("a.jpg", "b.jpg"):
        _image(tmp_path / "train" / name)
    ann = tmp_path / "annotations" / "instances_train.json"
    ann.parent.mkdir()
    outcomes = {}
    for variant, value in JSON_VARIANTS:
        data = copy.deepcopy(_coco_data())
        _set(data, path, value)
        ann.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
        run = lambda: _index(COCOSource(tmp_path, train="train", val="train"))  # noqa: E731
        outcomes[variant] = _outcome(
            run, "instances_train.json", COCO_FIELDS[path], f"{path}={variant}"
        )
    if path.endswith((".id", "_id")):  # ids: integers only, as COCO's tools compare them
        assert outcomes["float_id"] == outcomes["true"] == outcomes["text"] == "refused"


@pytest.mark.parametrize("top", [[], "text", 3, None])
def test_a_coco_file_that_is_not_an_object(tmp_path, top):
    ann = tmp_path / "annotations" / "instances_train.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(top))
    with pytest.raises(
        AnnotationError, match=r"instances_train.json: the top level: expected an object"
    ):
        COCOSource(tmp_path, train="train").class_names  # noqa: B018


def test_coco_ids_compare_by_value_and_type(tmp_path):
    """``1`` and ``1.0`` were two images with one id; ``true`` was a coordinate of 1."""
    _image(tmp_path / "train" / "a.jpg")
    _image(tmp_path / "train" / "b.jpg")
    ann = tmp_path / "annotations" / "instances_train.json"
    ann.parent.mkdir()
    for path, value, message in [
        ("images.1.id", 1.0, r"images\[1\]\.id: expected an integer id, found 1\.0 \(float\)"),
        (
            "annotations.1.bbox.0",
            True,
            r"annotations\[1\]\.bbox: expected \[x, y, w, h\], four numbers",
        ),
        ("images.1.id", 1, r"images\[1\]\.id: duplicate image id 1 \(first at images\[0\]\)"),
    ]:
        data = _coco_data()
        _set(data, path, value)
        ann.write_text(json.dumps(data))
        with pytest.raises(AnnotationError, match=message):
            _index(COCOSource(tmp_path, train="train", val="train"))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["circle", "circle"], r"categories \(by id\), name\[1\]: class name 'circle' again"),
        (
            ["circle", "circle "],
            r"categories \(by id\), name\[1\]: class name 'circle ' again \(as 'circle'\)",
        ),
        (["background", "square"], r"name\[0\]: 'background' is the name of label 0"),
        (["circle", "Background"], r"name\[1\]: 'Background' is the name of label 0"),
    ],
)
def test_class_names_cannot_collide(tmp_path, names, message):
    data = _coco_data()
    for cat, name in zip(data["categories"], names):
        cat["name"] = name
    ann = tmp_path / "annotations" / "instances_train.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=message):
        COCOSource(tmp_path, train="train").class_names  # noqa: B018
    with pytest.raises(
        AnnotationError, match=r"data.source.class_names\[1\]: class name 'a' again"
    ):
        VOCSource(tmp_path, class_names=["a", "a"])


# --- VOC ---------------------------------------------------------------------------------------

VOC_XML = (
    "<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height>"
    "</size><object><name>circle</name><difficult>0</difficult><bndbox><xmin>5</xmin>"
    "<ymin>5</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>"
)
VOC_FIELDS = {  # element -> (its text in VOC_XML, the names an error may carry)
    "filename": ("a.jpg", ("filename", "a.jpg")),
    "width": ("64", ("size.width",)),
    "height": ("48", ("size.height",)),
    "name": ("circle", ("object[0].name",)),
    "difficult": ("0", ("difficult",)),
    "xmin": ("5", ("object[0].bndbox",)),
    "ymin": ("5", ("object[0].bndbox",)),
    "xmax": ("30", ("object[0].bndbox",)),
    "ymax": ("40", ("object[0].bndbox",)),
}


@pytest.mark.parametrize("element", list(VOC_FIELDS))
def test_every_voc_field_malformed(tmp_path, element):
    _image(tmp_path / "JPEGImages" / "a.jpg")
    (tmp_path / "ImageSets/Main").mkdir(parents=True)
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    (tmp_path / "Annotations").mkdir()
    good, fields = VOC_FIELDS[element]
    tag = f"<{element}>{good}</{element}>"
    assert tag in VOC_XML
    outcomes = {}
    for variant, text in TEXT_VARIANTS:
        xml = VOC_XML.replace(tag, "" if text is None else f"<{element}>{text}</{element}>")
        (tmp_path / "Annotations" / "a.xml").write_text(xml)
        run = lambda: _index(VOCSource(tmp_path, class_names=CLASSES, train="train", val="train"))  # noqa: E731
        outcomes[variant] = _outcome(run, "a.xml", fields, f"{element}={variant}")
    if element in ("width", "height"):  # an image size is a positive whole number
        assert {v for k, v in outcomes.items() if k != "missing"} == {"refused"}


# --- YOLO --------------------------------------------------------------------------------------

YOLO_TOKENS = ["0", "0.5", "0.5", "0.4", "0.4"]


@pytest.mark.parametrize("position", range(len(YOLO_TOKENS) + 1))
def test_every_yolo_field_malformed(tmp_path, position):
    _image(tmp_path / "images" / "train" / "a.jpg")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    outcomes = {}
    for variant, text in TEXT_VARIANTS:
        tokens = list(YOLO_TOKENS)
        if position == len(YOLO_TOKENS):  # an extra token: neither a box nor a polygon
            tokens.append(text or "")
        elif text is None:
            del tokens[position]
        else:
            tokens[position] = text
        (tmp_path / "labels" / "train" / "a.txt").write_text(" ".join(tokens) + "\n")
        run = lambda: _index(YOLOSource(tmp_path, train="train", val="train"))  # noqa: E731
        outcomes[variant] = _outcome(run, "a.txt", ("line 1",), f"token {position}={variant}")


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ("circle\ncircle\n", r"classes.txt\[1\]: class name 'circle' again"),
        ("background\n", r"classes.txt\[0\]: 'background' is the name of label 0"),
        ("", r"classes.txt: no class names"),
    ],
)
def test_yolo_class_names_cannot_collide(tmp_path, classes, message):
    (tmp_path / "images").mkdir()
    (tmp_path / "classes.txt").write_text(classes)
    with pytest.raises(AnnotationError, match=message):
        YOLOSource(tmp_path).class_names  # noqa: B018
