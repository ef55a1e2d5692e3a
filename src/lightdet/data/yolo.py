"""YOLO txt format (the Ultralytics layout) reader and writer.

Layout: ``images/<split>/<name>.<ext>`` with ``labels/<split>/<name>.txt`` beside them, one object
per line, ``class cx cy w h``, class a 0-based index into ``classes.txt`` (one name per line),
coordinates normalized to [0, 1] by the image size. An image without a label file has no objects.
Labels are ``class + 1`` (0 is background), as for every reader.
"""

from __future__ import annotations

import codecs
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightdet.data.checks import DataChecker, unknown_class
from lightdet.data.images import ImageProblem, image_size
from lightdet.data.records import AnnotationError, DetectionRecord

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_text(path: Path) -> str:
    """A text file as editors write it: UTF-8 with or without a byte-order mark (Windows tools
    add one), or UTF-16 with its mark.

    Raises:
        AnnotationError: any other encoding, naming the file.
    """
    data = path.read_bytes()
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise AnnotationError(
            f"{path}: not UTF-8 or UTF-16 text (byte {err.start}: "
            f"{data[err.start : err.start + 4]!r})"
        ) from err


def read_yolo_classes(root: str | os.PathLike) -> list[str]:
    """Class names from ``root/classes.txt``, one per line; a blank line among them is refused
    (every later class would shift by one index). When Ultralytics' ``data.yaml`` is there too,
    its ``names`` must be the same list."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: YOLO class names file not found (one name per line)")
    lines = [line.strip() for line in read_text(path).splitlines()]
    while lines and not lines[-1]:  # blank lines at the end shift nothing
        lines.pop()
    if "" in lines:
        raise AnnotationError(
            f"{path}: line {lines.index('') + 1} is blank: the names after it would take the "
            "wrong class indices; remove it (one name per line)"
        )
    if not lines:
        raise AnnotationError(f"{path}: no class names")
    _check_data_yaml(Path(root), lines)
    return lines


def _check_data_yaml(root: Path, names: list[str]) -> None:
    """Ultralytics' ``data.yaml`` ``names`` (a list, or index -> name) against classes.txt."""
    path = root / "data.yaml"
    if not path.is_file():
        return
    import yaml

    try:
        given = (yaml.safe_load(read_text(path)) or {}).get("names")
    except (yaml.YAMLError, AttributeError) as err:
        raise AnnotationError(f"{path}: not a YAML mapping ({str(err).splitlines()[0]})") from err
    if isinstance(given, dict):
        given = [given[k] for k in sorted(given)]
    if given is not None and [str(n).strip() for n in given] != names:
        raise AnnotationError(
            f"{path}: names {list(given)} differ from classes.txt {names}; the label indices "
            "would mean other classes to each: make them one list"
        )


def read_yolo(
    root: str | os.PathLike,
    split: str,
    class_names: Sequence[str],
    *,
    first_image_id: int = 1,
    checker: DataChecker | None = None,
) -> list[DetectionRecord]:
    """Read ``images/<split>`` and ``labels/<split>`` into records (pixel xyxy boxes).

    Image sizes come from the image headers (YOLO labels are normalized). An image that cannot
    be opened is skipped and counted by ``checker`` (an error without one).

    Raises:
        AnnotationError: naming the label file, line and field of a malformed label.
    """
    root = Path(root)
    image_dir = root / "images" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: YOLO image folder not found")
    return read_yolo_files(
        image_dir,
        root / "labels" / split,
        class_names,
        first_image_id=first_image_id,
        checker=checker,
    )


def yolo_images(image_dir: Path) -> list[Path]:
    """The images of a YOLO image folder, sorted; two with one stem are an error."""
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    _check_stems(images, image_dir.name)
    return images


def read_yolo_files(
    image_dir: Path,
    label_dir: Path,
    class_names: Sequence[str],
    *,
    stems: Sequence[str] | None = None,
    first_image_id: int = 1,
    checker: DataChecker | None = None,
) -> list[DetectionRecord]:
    """The images of ``image_dir`` (those named in ``stems``, when given) with their label
    files ``label_dir/<stem>.txt``."""
    images = yolo_images(image_dir)
    if stems is None:  # this split's own label folder (the flat one is every split's)
        _count_labels_without_images(label_dir, {p.stem for p in images}, checker)
    else:
        wanted = set(stems)
        images = [p for p in images if p.stem in wanted]
    records = []
    for i, image in enumerate(images):
        label_file = label_dir / f"{image.stem}.txt"
        try:
            width, height = image_size(image)
        except ImageProblem as problem:
            if checker is None:
                raise AnnotationError(str(problem)) from problem
            checker.skip(problem.reason, f"{label_file}: {problem}")
            continue
        boxes, labels, refs = _read_labels(label_file, width, height, len(class_names), checker)
        records.append(
            DetectionRecord(
                image,
                first_image_id + i,
                width,
                height,
                boxes,
                labels,
                name=image.stem,
                source=str(label_file),
                box_refs=refs,
            )
        )
    return records


def _count_labels_without_images(
    label_dir: Path, stems: set[str], checker: DataChecker | None
) -> None:
    """Label files whose image is not in the folder (a renamed or deleted image): their boxes
    train nothing, so they are noted and counted (``label_without_image``)."""
    if checker is None or not label_dir.is_dir():
        return
    orphans = sorted(p.name for p in label_dir.glob("*.txt") if p.stem not in stems)
    if orphans:
        shown = ", ".join(orphans[:3]) + (", ..." if len(orphans) > 3 else "")
        checker.note("label_without_image", f"{label_dir}: {shown}", count=len(orphans))


def _check_stems(images: Sequence[Path], split: str) -> None:
    """Two images with one stem (``0000.jpg``, ``0000.png``) would both take one label file."""
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen:
            raise AnnotationError(
                f"{image.parent}: {seen[image.stem].name} and {image.name} share the stem "
                f"{image.stem!r}, so both would take labels/{split}/{image.stem}.txt; rename one"
            )
        seen[image.stem] = image


def _normalised_box(fields: list[str], where: str, line: str) -> tuple[int, list[float]]:
    """``class cx cy w h``, or a segmentation polygon ``class x1 y1 x2 y2 x3 y3 ...`` (what
    Ultralytics' segment datasets hold), as the class and ``[x1, y1, x2, y2]`` in 0..1."""
    expected = f"expected 'class cx cy w h', got {line!r} (or a polygon 'class x1 y1 x2 y2 ...')"
    try:
        cls, values = int(fields[0]), [float(v) for v in fields[1:]]
    except (ValueError, IndexError) as err:
        raise AnnotationError(f"{where}: {expected}") from err
    if len(values) == 4:
        cx, cy, w, h = values
        return cls, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    if len(values) >= 6 and len(values) % 2 == 0:  # the polygon's bounding box
        xs, ys = values[0::2], values[1::2]
        return cls, [min(xs), min(ys), max(xs), max(ys)]
    raise AnnotationError(f"{where}: {expected}: {len(values)} numbers after the class")


def _read_labels(path: Path, width: int, height: int, num_classes: int, checker):
    boxes, labels, refs = [], [], []
    lines = read_text(path).splitlines() if path.is_file() else []
    coordinates: list[float] = []  # normalised, every line's
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{path}: line {lineno}"
        cls, (x1, y1, x2, y2) = _normalised_box(fields, where, line)
        coordinates += [x1, y1, x2, y2]
        if not 0 <= cls < num_classes:
            message = f"{where}.class: {cls} is not a class index (0..{num_classes - 1})"
            unknown_class(checker, message)
            continue
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        labels.append(cls + 1)
        refs.append(f"line {lineno}")
    if coordinates and min(coordinates) > 1.0:
        log.warning(
            "%s: every coordinate is above 1 (%g to %g): this looks like pixel "
            "coordinates; YOLO wants values normalised to 0..1 (x and width divided by "
            "the image width, y and height by its height)",
            path,
            min(coordinates),
            max(coordinates),
        )
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64), refs


def write_yolo(
    root: str | os.PathLike,
    split: str,
    records: Sequence[DetectionRecord],
    class_names: Sequence[str],
) -> None:
    """Write records (and ``classes.txt``); images are hard-linked (or copied) in."""
    root = Path(root)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in class_names))
    for r in records:
        image = root / "images" / split / Path(r.image_path).name
        if not image.exists():
            try:
                os.link(r.image_path, image)
            except OSError:  # file systems without hard links
                shutil.copyfile(r.image_path, image)
        lines = []
        for (x1, y1, x2, y2), label in zip(r.boxes, r.labels):
            cx, cy = (x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height
            w, h = (x2 - x1) / r.width, (y2 - y1) / r.height
            lines.append(f"{int(label) - 1} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        (root / "labels" / split / f"{image.stem}.txt").write_text("".join(lines))
