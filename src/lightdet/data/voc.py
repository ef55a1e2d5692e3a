"""Pascal VOC (``VOCdevkit/VOC2007`` layout) reader and writer.

VOC boxes are 1-based inclusive pixel indices; records use 0-based pixel edges, so the reader
subtracts 1 from ``xmin``/``ymin`` and the writer adds it back (the Detectron2 convention).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightdet.data import fields
from lightdet.data.checks import DataChecker
from lightdet.data.records import AnnotationError, DetectionRecord, resolve_inside

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


def read_voc(
    root: str | os.PathLike,
    split: str,
    class_names: Sequence[str] = VOC_CLASSES,
    *,
    first_image_id: int = 1,
    checker: DataChecker | None = None,
) -> list[DetectionRecord]:
    """Read ``root/ImageSets/Main/<split>.txt`` and the listed ``Annotations/*.xml``.

    Args:
        root: a VOC year folder (holding ``JPEGImages``, ``Annotations``, ``ImageSets``).
        split: image-set name (``train``, ``val``, ``trainval``, ``test``).
        class_names: the K class names; labels are their 1-based positions.
        first_image_id: integer id of the first image (so several roots can be combined).
        checker: counts objects skipped for an unknown class (``data.policy.unknown_classes``);
            without one, an unknown class is an error.

    Raises:
        AnnotationError: naming the file and field of a malformed annotation.
    """
    root = Path(root)
    list_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: VOC split list not found (check data.source.root)")
    names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for lineno, name in enumerate(names, 1):
        if name in seen:
            raise AnnotationError(
                f"{list_file}: line {lineno}: image {name!r} listed twice (first on line "
                f"{seen[name]}); duplicates would count its objects twice in evaluation"
            )
        seen[name] = lineno
    class_index = {name: i + 1 for i, name in enumerate(class_names)}
    return [
        _read_annotation(root, name, first_image_id + i, class_index, checker)
        for i, name in enumerate(names)
    ]


def _read_annotation(
    root: Path, name: str, image_id: int, class_index: dict, checker: DataChecker | None
) -> DetectionRecord:
    xml_path = root / "Annotations" / f"{name}.xml"
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as err:  # its message carries line and column
        raise AnnotationError(f"{xml_path}: malformed XML ({err})") from err
    except FileNotFoundError as err:
        raise AnnotationError(f"{xml_path}: annotation file missing") from err
    filename = (tree.findtext("filename") or "").strip() or f"{name}.jpg"
    image_path = resolve_inside(root / "JPEGImages", filename, f"{xml_path}: filename")
    width = _number(tree, "size/width", xml_path, fields.size)
    height = _number(tree, "size/height", xml_path, fields.size)
    boxes, labels, difficult, refs = [], [], [], []
    for i, obj in enumerate(tree.findall("object")):
        label = (obj.findtext("name") or "").strip()
        if label not in class_index:
            message = f"{xml_path}: object[{i}].name: unknown class {label!r}"
            if checker is None or checker.policy.unknown_classes == "error":
                raise AnnotationError(f"{message} (data.policy.unknown_classes=skip skips it)")
            checker.skip("unknown_class", message)
            continue
        field = f"object[{i}].bndbox"
        x1, y1, x2, y2 = (
            _number(obj, f"bndbox/{k}", xml_path, fields.number, field)
            for k in ("xmin", "ymin", "xmax", "ymax")
        )
        # VOC's 1-based corners to 0-based xyxy. A box without extent in the file itself
        # (xmax <= xmin, as real datasets hold: [504, 337, 504, 337]) stays without extent, so
        # the degenerate-box check skips it, instead of a 1 px box after the shift
        x2 = x2 if x2 > x1 else min(x2, x1 - 1.0)
        y2 = y2 if y2 > y1 else min(y2, y1 - 1.0)
        boxes.append([x1 - 1.0, y1 - 1.0, x2, y2])
        labels.append(class_index[label])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")  # missing tag: 0
        refs.append(field)
    return DetectionRecord(
        image_path=image_path,
        image_id=image_id,
        width=width,
        height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        iscrowd=np.asarray(difficult, bool),
        name=name,
        source=str(xml_path),
        box_refs=refs,
    )


def _number(node: ET.Element, path: str, xml_path: Path, kind, field: str | None = None):
    """The number at ``path``, checked by ``kind`` (:func:`fields.size` for the image size,
    :func:`fields.number` for coordinates, where NaN and inf go on to the box checks)."""
    text = node.findtext(path)
    where = f"{field}.{path.rsplit('/', 1)[-1]}" if field else path.replace("/", ".")
    if text is None:
        raise AnnotationError(f"{xml_path}: {where}: missing")
    try:
        value = float(text)
    except ValueError as err:
        found = text.strip()
        raise AnnotationError(f"{xml_path}: {where}: not a number (found {found!r})") from err
    return kind(value, f"{xml_path}: {where}")


def write_voc_annotation(
    path: str | os.PathLike, record: DetectionRecord, class_names: Sequence[str]
) -> None:
    """Write one record as a VOC XML annotation."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "VOC"
    ET.SubElement(ann, "filename").text = Path(record.image_path).name
    size = ET.SubElement(ann, "size")
    for key, value in (("width", record.width), ("height", record.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    for box, label, hard in zip(record.boxes, record.labels, record.iscrowd):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = class_names[int(label) - 1]
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(hard))
        bndbox = ET.SubElement(obj, "bndbox")
        values = (box[0] + 1.0, box[1] + 1.0, box[2], box[3])
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), values):
            ET.SubElement(bndbox, key).text = f"{float(value):.2f}"
    ET.indent(ann)
    ET.ElementTree(ann).write(path, encoding="utf-8")
