"""COCO (``instances_*.json``) reader and writer.

COCO category ids need not be contiguous (COCO itself uses 1..90 for 80 classes). The reader maps
them explicitly, sorted by id, to labels ``1..K``; that ``category_map`` travels with the config and
the checkpoint so predictions can be mapped back.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightdet.data import fields
from lightdet.data.checks import DataChecker, unknown_class
from lightdet.data.classes import check_class_names
from lightdet.data.records import AnnotationError, DetectionRecord, resolve_inside


def read_coco_categories(annotation_file: str | os.PathLike) -> tuple[list[str], dict[int, int]]:
    """Class names (sorted by category id) and the ``category_id -> label`` map of a COCO file."""
    return _categories(_load(Path(annotation_file)), Path(annotation_file))


def read_coco(
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    checker: DataChecker | None = None,
) -> tuple[list[DetectionRecord], list[str], dict[int, int]]:
    """Read a COCO detection file.

    Args:
        annotation_file: ``instances_*.json``.
        image_root: folder the images' ``file_name`` is relative to.
        checker: counts annotations skipped for an unknown category
            (``data.policy.unknown_classes``); without one, an unknown category is an error.

    Returns:
        records (one per image, images without annotations included), class names, and the
        ``category_id -> label`` map (labels ``1..K``).

    Raises:
        AnnotationError: naming the file and field of a malformed annotation.
    """
    path, image_root = Path(annotation_file), Path(image_root)
    data = _load(path)
    class_names, category_map = _categories(data, path)
    images = _images(data, path)
    per_image: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    annotation_ids: dict[int, int] = {}
    for i, ann in enumerate(fields.sequence(data.get("annotations", []), f"{path}: annotations")):
        where = f"{path}: annotations[{i}]"
        ann = fields.mapping(ann, where)
        ann_id = fields.read(ann, "id", where, fields.integer_id)
        if ann_id in annotation_ids:
            raise AnnotationError(
                f"{where}.id: duplicate annotation id {ann_id!r} "
                f"(first at annotations[{annotation_ids[ann_id]}])"
            )
        annotation_ids[ann_id] = i
        image_id = fields.read(ann, "image_id", where, fields.integer_id)
        if image_id not in images:
            raise AnnotationError(f"{where}.image_id: unknown image id {image_id!r}")
        category = fields.read(ann, "category_id", where, fields.integer_id)
        if category not in category_map:
            message = f"{where}.category_id: unknown category {category!r}"
            unknown_class(checker, message)
            continue
        per_image[image_id].append((i, ann))
    records = [
        _record(path, image_root, i, img, per_image[image_id], category_map)
        for i, (image_id, img) in enumerate(images.items())
    ]
    return records, class_names, category_map


def _load(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8-sig") as f:  # a BOM, as Windows editors write, is fine
            data = json.load(f)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: COCO annotation file not found") from err
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise AnnotationError(
            f"{path}: malformed JSON (line {err.lineno}, column {err.colno})"
        ) from err
    except RecursionError as err:
        raise AnnotationError(f"{path}: JSON nested too deeply") from err
    data = fields.mapping(data, f"{path}: the top level")
    for key in ("images", "categories"):
        fields.sequence(fields.get(data, key, f"{path}: {key}"), f"{path}: {key}")
    return data


def _categories(data: dict, path: Path) -> tuple[list[str], dict[int, int]]:
    cats = []
    for i, cat in enumerate(data["categories"]):
        where = f"{path}: categories[{i}]"
        cat = fields.mapping(cat, where)
        cat_id = fields.read(cat, "id", where, fields.integer_id)
        name = fields.read(cat, "name", where, fields.text)
        cats.append((cat_id, name, i))
    cats.sort()
    for (a, _, i), (b, _, j) in zip(cats, cats[1:]):
        if a == b:
            raise AnnotationError(
                f"{path}: categories[{j}].id: duplicate category id {b} (also categories[{i}])"
            )
    names = check_class_names([n for _, n, _ in cats], f"{path}: categories (by id), name")
    return names, {cat_id: k + 1 for k, (cat_id, _, _) in enumerate(cats)}


def _images(data: dict, path: Path) -> dict[int, dict]:
    images: dict[int, dict] = {}
    first: dict[int, int] = {}
    for i, img in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        img = fields.mapping(img, where)
        image_id = fields.read(img, "id", where, fields.integer_id)
        if image_id in images:
            raise AnnotationError(
                f"{where}.id: duplicate image id {image_id!r} (first at images[{first[image_id]}])"
            )
        images[image_id], first[image_id] = img, i
    return images


def _record(
    path: Path, root: Path, index: int, img: dict, anns: list[tuple[int, dict]], category_map: dict
) -> DetectionRecord:
    where = f"{path}: images[{index}]"
    file_name = fields.read(img, "file_name", where, fields.text)
    width = fields.read(img, "width", where, fields.size)
    height = fields.read(img, "height", where, fields.size)
    image_path = resolve_inside(root, file_name, f"{where}.file_name")
    boxes = np.asarray([_bbox(path, i, a) for i, a in anns], np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    crowd = [fields.flag(a.get("iscrowd", 0), f"{path}: annotations[{i}].iscrowd") for i, a in anns]
    return DetectionRecord(
        image_path=image_path,
        image_id=int(img["id"]),
        width=width,
        height=height,
        boxes=boxes,
        labels=np.asarray([category_map[a["category_id"]] for _, a in anns], np.int64),
        iscrowd=np.asarray(crowd, bool),
        name=file_name,
        source=f"{where} ({file_name})",
        box_refs=[f"annotations[{i}].bbox" for i, _ in anns],
    )


def _bbox(path: Path, index: int, ann: dict) -> list[float]:
    """``[x, y, w, h]`` as floats (``NaN`` and inf pass: JSON readers allow them, and the box
    checks refuse them by rule, naming the box)."""
    where = f"{path}: annotations[{index}].bbox"
    bbox = fields.get(ann, "bbox", where)
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(fields.is_number, bbox)):
        raise fields.fail(where, "[x, y, w, h], four numbers", bbox)
    return [float(v) for v in bbox]


def write_coco(
    path: str | os.PathLike,
    records: Sequence[DetectionRecord],
    class_names: Sequence[str],
    category_ids: Sequence[int],
) -> None:
    """Write records as a COCO detection file; ``file_name`` is the image's base name."""
    label_to_id = {i + 1: cid for i, cid in enumerate(category_ids)}
    images, annotations = [], []
    for r in records:
        images.append(
            {
                "id": r.image_id,
                "file_name": Path(r.image_path).name,
                "width": r.width,
                "height": r.height,
            }
        )
        for box, label, crowd in zip(r.boxes, r.labels, r.iscrowd):
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": r.image_id,
                    "category_id": label_to_id[int(label)],
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": int(crowd),
                }
            )
    categories = [
        {"id": cid, "name": n, "supercategory": "shape"}
        for n, cid in zip(class_names, category_ids)
    ]
    Path(path).write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
