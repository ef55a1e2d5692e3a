"""Where records come from: a VOC folder, a COCO folder, or the generated shapes dataset.

A source answers three questions for the datamodule: which classes (``class_names`` and the
``category_map`` that produced the labels), which records per split, and what to do before reading
(``prepare``: generate the shapes data; real datasets must already be on disk).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightdet.data.checks import DataChecker
from lightdet.data.classes import check_class_names
from lightdet.data.coco import read_coco, read_coco_categories
from lightdet.data.records import DetectionRecord
from lightdet.data.shapes import SHAPE_CLASSES, ShapesSpec, ensure_shapes
from lightdet.data.voc import VOC_CLASSES, read_voc
from lightdet.data.yolo import read_yolo, read_yolo_classes

SPLITS = ("train", "val", "test")


class VOCSource:
    """One or several VOC year folders (``VOCdevkit/VOC2007``, ``VOCdevkit/VOC2012``).

    Args:
        roots: a year folder or a list of them; each split is read from every root that lists it.
        class_names: the K class names (default: the 20 VOC classes).
        train, val, test: image-set names for each split (``None`` for no such split).
    """

    def __init__(
        self,
        roots: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        class_names: Sequence[str] = VOC_CLASSES,
        train: str | None = "trainval",
        val: str | None = "test",
        test: str | None = None,
    ) -> None:
        self.roots = (
            [Path(roots)] if isinstance(roots, str | os.PathLike) else [Path(r) for r in roots]
        )
        self.class_names = check_class_names(list(class_names), "data.source.class_names")
        self.category_map = {name: i + 1 for i, name in enumerate(self.class_names)}
        self.splits = {"train": train, "val": val, "test": test}

    def prepare(self) -> None:
        for root in self.roots:
            if not (root / "Annotations").is_dir():
                raise FileNotFoundError(
                    f"{root}: not a VOC year folder (no Annotations/); set data.source.roots"
                )

    def records(
        self, split: str, checker: DataChecker | None = None
    ) -> list[DetectionRecord] | None:
        name = self.splits[split]
        if name is None:
            return None
        roots = [r for r in self.roots if (r / "ImageSets" / "Main" / f"{name}.txt").is_file()]
        if not roots:
            raise FileNotFoundError(f"no VOC root in {self.roots} lists ImageSets/Main/{name}.txt")
        records: list[DetectionRecord] = []
        for root in roots:  # ids stay unique across roots
            records += read_voc(
                root, name, self.class_names, first_image_id=len(records) + 1, checker=checker
            )
        return records


class COCOSource:
    """A COCO folder: ``annotations/instances_<split>.json`` and images in ``<split>/``.

    Args:
        root: the folder holding ``annotations/``.
        train, val, test: split names (``train2017``, ``val2017``; ``None`` for no such split).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        train: str | None = "train2017",
        val: str | None = "val2017",
        test: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.splits = {"train": train, "val": val, "test": test}
        self._classes: tuple[list[str], dict[int, int]] | None = None

    def _file(self, name: str) -> Path:
        return self.root / "annotations" / f"instances_{name}.json"

    def prepare(self) -> None:
        for name in filter(None, self.splits.values()):
            if not self._file(name).is_file():
                raise FileNotFoundError(f"{self._file(name)}: not found; set data.source.root")

    def _categories(self) -> tuple[list[str], dict[int, int]]:
        if self._classes is None:  # the category list of the train split defines the labels
            self._classes = read_coco_categories(
                self._file(self.splits["train"] or self.splits["val"])
            )
        return self._classes

    @property
    def class_names(self) -> list[str]:
        return self._categories()[0]

    @property
    def category_map(self) -> dict[int, int]:
        return self._categories()[1]

    def records(
        self, split: str, checker: DataChecker | None = None
    ) -> list[DetectionRecord] | None:
        name = self.splits[split]
        if name is None:
            return None
        records, names, category_map = read_coco(self._file(name), self.root / name, checker)
        if category_map != self.category_map:
            raise ValueError(
                f"{self._file(name)}: categories differ from the train split's "
                f"({names} vs {self.class_names})"
            )
        return records


class YOLOSource:
    """A YOLO folder: ``images/<split>/``, ``labels/<split>/*.txt`` and ``classes.txt``.

    Args:
        root: the folder holding ``images/``, ``labels/`` and ``classes.txt``.
        train, val, test: split folder names (``None`` for no such split).
        class_names: override ``classes.txt``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        train: str | None = "train",
        val: str | None = "val",
        test: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.splits = {"train": train, "val": val, "test": test}
        self._class_names = (check_class_names(list(class_names), "data.source.class_names")
                             if class_names is not None else None)  # fmt: skip

    def prepare(self) -> None:
        if not (self.root / "images").is_dir():
            raise FileNotFoundError(
                f"{self.root}: not a YOLO folder (no images/); set data.source.root"
            )

    @property
    def class_names(self) -> list[str]:
        if self._class_names is None:
            names = read_yolo_classes(self.root)
            self._class_names = check_class_names(names, str(self.root / "classes.txt"))
        return self._class_names

    @property
    def category_map(self) -> dict[int, int]:
        return {i: i + 1 for i in range(len(self.class_names))}  # YOLO class index -> label

    def records(
        self, split: str, checker: DataChecker | None = None
    ) -> list[DetectionRecord] | None:
        name = self.splits[split]
        if name is None:
            return None
        return read_yolo(self.root, name, self.class_names, checker=checker)


class ShapesSource:
    """The synthetic shapes dataset, generated on first use and read back as VOC, COCO or YOLO.

    Args:
        root: folder to generate into (reused while the parameters are unchanged).
        format: ``voc``, ``coco`` or ``yolo``: which of the written layouts to read.
        **spec: :class:`~lightdet.data.shapes.ShapesSpec` fields (sizes, counts, classes, seed).
    """

    def __init__(self, root: str | os.PathLike, *, format: str = "voc", **spec) -> None:
        if format not in ("voc", "coco", "yolo"):
            raise ValueError(f"data.source.format: expected voc, coco or yolo, got {format!r}")
        for key in ("classes", "coco_category_ids"):
            if spec.get(key) is not None:
                spec[key] = tuple(spec[key])
        self.spec = ShapesSpec(**spec)
        self.root = Path(root)
        self.format = format
        splits = {s: (s if getattr(self.spec, f"num_{s}") else None) for s in SPLITS}
        if format == "voc":
            self._reader = VOCSource(self.root / "VOC", class_names=self.spec.classes, **splits)
        elif format == "coco":
            self._reader = COCOSource(self.root / "COCO", **splits)
        else:
            self._reader = YOLOSource(self.root / "YOLO", class_names=self.spec.classes, **splits)

    def prepare(self) -> None:
        ensure_shapes(self.root, self.spec)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.classes)

    @property
    def category_map(self) -> dict:
        return self._reader.category_map

    def records(
        self, split: str, checker: DataChecker | None = None
    ) -> list[DetectionRecord] | None:
        return self._reader.records(split, checker)


__all__ = ["COCOSource", "SHAPE_CLASSES", "ShapesSource", "VOCSource", "YOLOSource"]
