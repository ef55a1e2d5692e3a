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

from lightdet.data.checks import DataChecker
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
    annotation_ids: dict[object, int] = {}
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{path}: annotations[{i}]"
        ann_id = ann.get("id")
        if ann_id in annotation_ids:
            raise AnnotationError(
                f"{where}.id: duplicate annotation id {ann_id!r} "
                f"(first at annotations[{annotation_ids[ann_id]}])"
            )
        annotation_ids[ann_id] = i
        if ann.get("image_id") not in images:
            raise AnnotationError(f"{where}.image_id: unknown image id {ann.get('image_id')!r}")
        if ann.get("category_id") not in category_map:
            message = f"{where}.category_id: unknown category {ann.get('category_id')!r}"
            if checker is None or checker.policy.unknown_classes == "error":
                raise AnnotationError(f"{message} (data.policy.unknown_classes=skip skips it)")
            checker.skip("unknown_class", message)
            continue
        per_image[ann["image_id"]].append((i, ann))
    records = [
        _record(path, image_root, i, img, per_image[image_id], category_map)
        for i, (image_id, img) in enumerate(images.items())
    ]
    return records, class_names, category_map


def _load(path: Path) -> dict:
    try:
        with path.open() as f:
            data = json.load(f)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: COCO annotation file not found") from err
    except json.JSONDecodeError as err:
        raise AnnotationError(
            f"{path}: malformed JSON (line {err.lineno}, column {err.colno})"
        ) from err
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("images", "categories"):
        if key not in data:
            raise AnnotationError(f"{path}: {key}: missing")
    return data


def _categories(data: dict, path: Path) -> tuple[list[str], dict[int, int]]:
    cats = sorted(data["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        raise AnnotationError(f"{path}: categories: duplicate category ids")
    return [c["name"] for c in cats], {c["id"]: i + 1 for i, c in enumerate(cats)}


def _images(data: dict, path: Path) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for i, img in enumerate(data["images"]):
        if img.get("id") in images:
            raise AnnotationError(f"{path}: images[{i}].id: duplicate image id {img.get('id')!r}")
        images[img["id"]] = img
    return images


def _record(
    path: Path, root: Path, index: int, img: dict, anns: list[tuple[int, dict]], category_map: dict
) -> DetectionRecord:
    where = f"{path}: images[{index}]"
    for key in ("file_name", "width", "height"):
        if key not in img:
            raise AnnotationError(f"{where}.{key}: missing")
    image_path = resolve_inside(root, str(img["file_name"]), f"{where}.file_name")
    boxes = np.asarray([_bbox(path, i, a) for i, a in anns], np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    return DetectionRecord(
        image_path=image_path,
        image_id=int(img["id"]),
        width=int(img["width"]),
        height=int(img["height"]),
        boxes=boxes,
        labels=np.asarray([category_map[a["category_id"]] for _, a in anns], np.int64),
        iscrowd=np.asarray([bool(a.get("iscrowd", 0)) for _, a in anns], bool),
        name=str(img["file_name"]),
        source=f"{where} ({img['file_name']})",
        box_refs=[f"annotations[{i}].bbox" for i, _ in anns],
    )


def _bbox(path: Path, index: int, ann: dict) -> list[float]:
    """``[x, y, w, h]`` as floats (``NaN`` passes: JSON allows it, and the checks refuse it)."""
    bbox = ann.get("bbox")
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise AnnotationError(f"{path}: annotations[{index}].bbox: expected [x, y, w, h], "
                              f"got {bbox!r}")  # fmt: skip
    return values


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
