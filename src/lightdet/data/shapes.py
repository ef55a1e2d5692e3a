"""Synthetic "shapes" detection dataset, written to disk as real Pascal VOC, COCO and YOLO folders.

Everything in lightdet runs offline on it: the generator is seeded, writes once, and is reused until
its parameters change. The files go through the same VOC, COCO and YOLO readers as real datasets.

Layout under ``root``::

    VOC/JPEGImages/000001.jpg  VOC/Annotations/000001.xml  VOC/ImageSets/Main/{train,val,test}.txt
    COCO/annotations/instances_{train,val,test}.json       COCO/{train,val,test}/000001.jpg
    lightdet_shapes.json       (the parameters it was generated with)
    .lightdet                  (the marker of a folder lightdet created)

Regenerating replaces only a folder that is recognisably a generated dataset: it carries the
stamp or the marker *and* holds nothing but the files above. A ``root`` with anything else in it
is an error naming it; lightdet never deletes what it did not create.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from lightdet import outputs
from lightdet.data.coco import write_coco
from lightdet.data.records import DetectionRecord
from lightdet.data.voc import write_voc_annotation
from lightdet.data.yolo import write_yolo

SHAPE_CLASSES = ("circle", "square", "triangle")
_STAMP = "lightdet_shapes.json"
_GENERATOR_VERSION = 2  # bump when the drawing changes, so cached datasets are regenerated
_SPLIT = r"(train|val|test)"
_LAYOUT = re.compile(
    "|".join(
        (
            re.escape(_STAMP),
            re.escape(outputs.MARKER),
            r"VOC/JPEGImages/\d+\.jpg",
            r"VOC/Annotations/\d+\.xml",
            rf"VOC/ImageSets/Main/{_SPLIT}\.txt",
            rf"COCO/annotations/instances_{_SPLIT}\.json",
            rf"COCO/{_SPLIT}/\d+\.jpg",
            r"YOLO/classes\.txt",
            rf"YOLO/images/{_SPLIT}/\d+\.jpg",
            rf"YOLO/labels/{_SPLIT}/\d+\.txt",
        )
    )
)


@dataclass(frozen=True)
class ShapesSpec:
    """Parameters of a shapes dataset; any change regenerates it."""

    num_train: int = 2000
    num_val: int = 200
    num_test: int = 0
    image_size: int = 192
    classes: tuple[str, ...] = SHAPE_CLASSES
    max_objects: int = 6
    min_object_size: float = 8.0
    small_object_size: float = 16.0
    max_object_size: float = 96.0
    small_fraction: float = 0.2
    empty_fraction: float = 0.05
    max_overlap_iou: float = 0.3
    coco_category_ids: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.classes) - set(SHAPE_CLASSES)
        if unknown:
            raise ValueError(f"shapes: unknown classes {sorted(unknown)}; known: {SHAPE_CLASSES}")
        if self.coco_category_ids is not None and len(self.coco_category_ids) != len(self.classes):
            raise ValueError("shapes: coco_category_ids needs one id per class")
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Objects must fit in the image: refused here, naming the keys, rather than failing
        inside the generator (``high - low < 0`` from numpy)."""
        sizes = [
            ("min_object_size", self.min_object_size),
            ("small_object_size", self.small_object_size),
            ("max_object_size", self.max_object_size),
            ("image_size", self.image_size),
        ]
        if not 0 < self.min_object_size:
            raise ValueError(
                f"shapes: data.source.min_object_size={self.min_object_size} must be positive"
            )
        for (a, x), (b, y) in zip(sizes, sizes[1:]):
            if x > y:
                raise ValueError(
                    f"shapes: data.source.{a}={x} exceeds data.source.{b}={y}; they must grow "
                    f"in this order: {', '.join(k for k, _ in sizes)} (so image_size >= "
                    f"{self.max_object_size:g} here, or lower data.source.max_object_size)"
                )

    def to_json(self) -> dict:
        return {"version": _GENERATOR_VERSION, **asdict(self)}


def folder_name(spec: ShapesSpec) -> str:
    """The folder of one parameter set: the main parameters, readable, and a hash of them all
    (``2000-200-0-192px-seed0-1a2b3c4d``)."""
    digest = hashlib.sha1(json.dumps(_jsonable(spec.to_json()), sort_keys=True).encode())
    return (
        f"{spec.num_train}-{spec.num_val}-{spec.num_test}-{spec.image_size}px-"
        f"seed{spec.seed}-{digest.hexdigest()[:8]}"
    )


def is_generated(root: str | os.PathLike, spec: ShapesSpec) -> bool:
    """Whether ``root`` holds the dataset of ``spec`` already (nothing to generate)."""
    stamp = Path(root) / _STAMP
    return stamp.is_file() and _read_stamp(stamp) == _jsonable(spec.to_json())


def check_generatable(root: str | os.PathLike, spec: ShapesSpec) -> None:
    """What :func:`ensure_shapes` would refuse, checked without writing anything."""
    root = Path(root)
    if not is_generated(root, spec):
        outputs.check_creatable(root, "data.source.root")
        _check_replaceable(root, "data.source.root")
        _check_replaceable(root.with_name(root.name + ".tmp"), "data.source.root (its sibling)")


def ensure_shapes(root: str | os.PathLike, spec: ShapesSpec) -> Path:
    """Generate the dataset into ``root`` unless it is already there with the same parameters.

    Writing goes to a temporary sibling folder renamed at the end, so an interrupted run never
    leaves a half-written dataset that would be mistaken for a complete one.
    """
    root = Path(root)
    if is_generated(root, spec):
        return root
    _check_replaceable(root, "data.source.root")
    tmp = root.with_name(root.name + ".tmp")
    _check_replaceable(tmp, "data.source.root (its temporary sibling)")
    _remove_generated(tmp)
    outputs.mark(tmp, "shapes")  # first: an interrupted write is ours too
    _write_dataset(tmp, spec)
    (tmp / _STAMP).write_text(json.dumps(_jsonable(spec.to_json()), indent=2))
    _check_replaceable(root, "data.source.root")  # again: generating took a while
    _remove_generated(root)
    tmp.rename(root)
    return root


def _read_stamp(stamp: Path) -> dict | None:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def foreign_files(root: Path) -> list[str]:
    """Files under ``root`` that a generated dataset does not hold (relative paths, sorted)."""
    if not root.is_dir():
        return [root.name] if root.exists() else []
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or (not path.is_dir() and not _LAYOUT.fullmatch(rel)):
            found.append(rel)
    return sorted(found)


def _check_replaceable(folder: Path, key: str) -> None:
    """A folder may be (re)generated when it is absent or empty, or when it is a generated
    dataset: the stamp or marker, and nothing but generated files."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    ours = (folder / _STAMP).is_file() or outputs.is_ours(folder)
    foreign = foreign_files(folder)
    if ours and not foreign:
        return
    listed = ", ".join(foreign[:5]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 5 else "")
    if ours:
        reason = f"it holds files a generated dataset does not ({listed})"
    else:
        reason = f"it is not a generated shapes dataset (no {_STAMP} or {outputs.MARKER})"
    raise outputs.ForeignFolderError(
        f"{key}={folder}: {reason}. lightdet regenerates only the folders it generated and "
        "never deletes other files: point data.source.root at a new or empty folder"
    )


def _remove_generated(folder: Path) -> None:
    """Delete a folder checked by :func:`_check_replaceable` (absent, empty or generated)."""
    if folder.exists():
        shutil.rmtree(folder)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))  # tuples -> lists, as read back from disk


def _write_dataset(root: Path, spec: ShapesSpec) -> None:
    voc, coco = root / "VOC", root / "COCO"
    for d in (
        voc / "JPEGImages",
        voc / "Annotations",
        voc / "ImageSets" / "Main",
        coco / "annotations",
    ):
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    splits = {"train": spec.num_train, "val": spec.num_val, "test": spec.num_test}
    next_id = 1
    total = sum(splits.values())
    with tqdm(total=total, desc=f"Generating shapes dataset in {root.name}", unit="img") as bar:
        for split, count in splits.items():
            if count == 0:
                continue
            records = []
            for image_id in range(next_id, next_id + count):
                records.append(_write_image(voc, image_id, rng, spec))
                bar.update()
            next_id += count
            _write_split(voc, coco, split, records, spec)
            write_yolo(root / "YOLO", split, records, spec.classes)


def _write_image(voc: Path, image_id: int, rng: np.random.Generator, spec: ShapesSpec):
    image, boxes, labels = draw_sample(rng, spec)
    name = f"{image_id:06d}"
    path = voc / "JPEGImages" / f"{name}.jpg"
    image.save(path, quality=92)
    record = DetectionRecord(path, image_id, image.width, image.height, boxes, labels, name=name)
    write_voc_annotation(voc / "Annotations" / f"{name}.xml", record, spec.classes)
    return record


def _write_split(voc: Path, coco: Path, split: str, records: list, spec: ShapesSpec) -> None:
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(
        "".join(f"{r.name}\n" for r in records)
    )
    image_dir = coco / split
    image_dir.mkdir(exist_ok=True)
    for r in records:
        _link_or_copy(r.image_path, image_dir / r.image_path.name)
    ids = spec.coco_category_ids or tuple(range(1, len(spec.classes) + 1))
    write_coco(coco / "annotations" / f"instances_{split}.json", records, spec.classes, ids)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # file systems without hard links
        shutil.copyfile(src, dst)


def draw_sample(
    rng: np.random.Generator, spec: ShapesSpec
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Draw one image; returns it with float32 [N,4] xyxy boxes and int64 [N] labels in 1..K."""
    size = spec.image_size
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    boxes: list[list[float]] = []
    labels: list[int] = []
    n = 0 if rng.random() < spec.empty_fraction else int(rng.integers(1, spec.max_objects + 1))
    for _ in range(n):
        placed = _place(rng, spec, boxes)
        if placed is None:
            continue
        label, box = placed
        _draw_shape(draw, spec.classes[label - 1], box, _contrasting_colour(rng, image, box))
        boxes.append(box)
        labels.append(label)
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    # low-frequency colour field + pixel noise + distractor strokes: a texture, not a flat colour
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    field_ = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), np.float32)
    field_ += rng.normal(0.0, 10.0, field_.shape)
    image = Image.fromarray(np.clip(field_, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 6))):
        xy = rng.uniform(0, size, 4).tolist()
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line(xy, fill=colour, width=int(rng.integers(1, 3)))
    return image


def _place(rng: np.random.Generator, spec: ShapesSpec, boxes: list, tries: int = 20):
    """A (label, box) that overlaps earlier boxes by at most ``max_overlap_iou``, or None."""
    size = spec.image_size
    for _ in range(tries):
        label = int(rng.integers(1, len(spec.classes) + 1))
        if rng.random() < spec.small_fraction:
            side = rng.uniform(spec.min_object_size, spec.small_object_size)
        else:
            lo, hi = math.log(spec.small_object_size), math.log(spec.max_object_size)
            side = math.exp(rng.uniform(lo, hi))
        w = side
        h = side * (math.sqrt(3) / 2 if spec.classes[label - 1] == "triangle" else 1.0)
        x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        box = [float(x1), float(y1), float(x1 + w), float(y1 + h)]
        if all(_iou(box, b) <= spec.max_overlap_iou for b in boxes):
            return label, box
    return None


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _contrasting_colour(rng: np.random.Generator, image: Image.Image, box: list) -> tuple:
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = np.asarray(image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))), np.float32)
    mean = patch.reshape(-1, 3).mean(0)
    colour = rng.integers(0, 256, 3)
    for _ in range(10):  # a shape must be visible against the texture under it
        if np.abs(colour - mean).sum() > 150:
            break
        colour = rng.integers(0, 256, 3)
    return tuple(int(c) for c in colour)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list, colour: tuple) -> None:
    x1, y1, x2, y2 = box
    # PIL fills up to and including the end pixel coordinate: draw inside [x1, x2)
    inner = [x1, y1, x2 - 1, y2 - 1]
    if shape == "circle":
        draw.ellipse(inner, fill=colour)
    elif shape == "square":
        draw.rectangle(inner, fill=colour)
    elif shape == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=colour)
    else:  # pragma: no cover - ShapesSpec validates class names
        raise ValueError(shape)
