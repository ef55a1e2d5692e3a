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
from lightdet.data.checks import DataChecker, unknown_class
from lightdet.data.inputs import IMAGE_SUFFIXES
from lightdet.data.records import AnnotationError, DetectionRecord, resolve_inside

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


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
    return read_voc_files(
        root / "Annotations",
        root / "JPEGImages",
        read_split_list(list_file),
        class_names,
        first_image_id=first_image_id,
        checker=checker,
    )


def read_split_list(list_file: Path) -> list[str]:
    """The image names of a VOC split list (first word of each line); one listed twice is an
    error (its objects would count twice in evaluation)."""
    names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for lineno, name in enumerate(names, 1):
        if name in seen:
            raise AnnotationError(
                f"{list_file}: line {lineno}: image {name!r} listed twice (first on line "
                f"{seen[name]}); duplicates would count its objects twice in evaluation"
            )
        seen[name] = lineno
    return names


def read_voc_files(
    annotations: Path,
    images: Path,
    names: Sequence[str],
    class_names: Sequence[str],
    *,
    first_image_id: int = 1,
    checker: DataChecker | None = None,
    classes_from: str | None = None,
) -> list[DetectionRecord]:
    """Read ``annotations/<name>.xml`` for each name; images are looked up in ``images``
    (``JPEGImages`` in a VOC year folder; the same folder where each XML sits beside its image).

    ``classes_from`` says where ``class_names`` came from when they were read from the data (the
    training split): a class missing from them is then always an error naming it.
    """
    class_index = {name: i + 1 for i, name in enumerate(class_names)}
    where = (annotations, images, classes_from)
    return [
        _read_annotation(where, name, first_image_id + i, class_index, checker)
        for i, name in enumerate(names)
    ]


def object_class_names(annotations: Path, names: Sequence[str]) -> dict[str, str]:
    """Every class name the objects of ``annotations/<name>.xml`` use, with the first
    ``file: object[i]`` that uses it."""
    found: dict[str, str] = {}
    for name in names:
        xml_path = annotations / f"{name}.xml"
        for i, obj in enumerate(_parse(xml_path).findall("object")):
            label = (obj.findtext("name") or "").strip()
            found.setdefault(label, f"{xml_path}: object[{i}].name")
    return found


def _parse(xml_path: Path) -> ET.Element:
    try:
        return ET.parse(xml_path).getroot()
    except ET.ParseError as err:  # its message carries line and column
        raise AnnotationError(f"{xml_path}: malformed XML ({err})") from err
    except FileNotFoundError as err:
        raise AnnotationError(f"{xml_path}: annotation file missing") from err


def _read_annotation(
    where: tuple, name: str, image_id: int, class_index: dict, checker: DataChecker | None
) -> DetectionRecord:
    annotations, images, classes_from = where
    xml_path = annotations / f"{name}.xml"
    tree = _parse(xml_path)
    image_path = _image_of(tree, name, images, xml_path, checker)
    width = _number(tree, "size/width", xml_path, fields.size)
    height = _number(tree, "size/height", xml_path, fields.size)
    boxes, labels, difficult, refs = [], [], [], []
    for i, obj in enumerate(tree.findall("object")):
        label = (obj.findtext("name") or "").strip()
        if label not in class_index:
            message = f"{xml_path}: object[{i}].name: unknown class {label!r}"
            if classes_from:
                raise AnnotationError(
                    f"{message}: not in {classes_from}, where the class list comes from "
                    f"({', '.join(class_index)}); give data.source.class_names to include it"
                )
            unknown_class(checker, message)
            continue
        field = f"object[{i}].bndbox"
        if len(obj.findall("bndbox")) > 1:  # one object, one box: never one of them silently
            raise AnnotationError(
                f"{xml_path}: {field}: {len(obj.findall('bndbox'))} bndbox elements in one "
                "object; write each box as its own <object>"
            )
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
        difficult.append(_difficult(obj, f"{xml_path}: object[{i}].difficult"))
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


# how the devkit and common tools write <difficult> (a missing or empty tag: not difficult)
_DIFFICULT = {"0": False, "false": False, "no": False, "": False}
_DIFFICULT |= {"1": True, "true": True, "yes": True}


def _difficult(obj: ET.Element, where: str) -> bool:
    text = (obj.findtext("difficult") or "").strip()
    if text.lower() not in _DIFFICULT:
        raise fields.fail(where, "0 or 1 (or true/false, yes/no)", text)
    return _DIFFICULT[text.lower()]


def _image_of(
    tree: ET.Element, name: str, images: Path, xml_path: Path, checker: DataChecker | None
) -> Path:
    """The annotation's image, paired by the XML's own name as the devkit pairs them:
    ``<filename>`` gives the file when it names the same stem (its extension may differ from
    .jpg); one that names another image is noted and counted, and the image of the XML's own
    name is used when there is one (else the named one, as a folder without stems in common
    has it)."""
    filename = (tree.findtext("filename") or "").strip() or f"{name}.jpg"
    named = resolve_inside(images, filename, f"{xml_path}: filename")
    if named.stem == name:
        return named
    own = next((p for p in (images / f"{name}{s}" for s in IMAGE_SUFFIXES) if p.is_file()), None)
    message = f"{xml_path}: filename: {filename!r} is not this annotation's image ({name}.*)"
    if checker is not None:
        checker.note("filename_differs", message)
    return own if own is not None else named


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
