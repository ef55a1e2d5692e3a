"""Where records come from: a VOC folder, a COCO folder, or the generated shapes dataset.

A source answers three questions for the datamodule: which classes (``class_names`` and the
``category_map`` that produced the labels), which records per split, and what to do before reading
(``prepare``: generate the shapes data; real datasets must already be on disk).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pytorch_lightning.utilities import rank_zero_info

from lightdet import outputs
from lightdet.data.checks import DataChecker
from lightdet.data.classes import check_class_names
from lightdet.data.coco import read_coco, read_coco_categories
from lightdet.data.records import AnnotationError, DetectionRecord
from lightdet.data.shapes import (
    SHAPE_CLASSES,
    ShapesSpec,
    check_generatable,
    ensure_shapes,
    folder_name,
    is_generated,
)
from lightdet.data.voc import VOC_CLASSES, object_class_names, read_split_list, read_voc_files
from lightdet.data.yolo import (
    IMAGE_EXTENSIONS,
    read_yolo,
    read_yolo_classes,
    read_yolo_files,
    yolo_images,
)

SPLITS = ("train", "val", "test")


@runtime_checkable
class DataSource(Protocol):
    """What the datamodule reads from a source (the classes below; a user's own, allowed with
    :func:`lightdet.guard.allow_targets`, has the same members)."""

    class_names: Sequence[str]
    category_map: dict

    def prepare(self) -> None: ...

    def records(self, split: str, checker: DataChecker | None = None) -> Any: ...

    def index_state(self) -> Any: ...

    def restore_index_state(self, state: Any) -> None: ...


class VOCSource:
    """One or several VOC folders: year folders (``VOCdevkit/VOC2007``, ``VOCdevkit/VOC2012``:
    ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``), or folders of one's own in
    that layout without split lists, folders where each XML sits beside its image (what
    LabelImg writes), an annotation folder beside an image folder as datasets are downloaded
    (``annots/`` + ``images/``, ``annotations/`` + ``images/``), or a folder per split with the
    XMLs beside the images (``train/``, ``valid/``, ``test/``: Roboflow's VOC export).

    A folder without split lists gets a seeded split of its annotated images (``val_fraction``
    of them for validation, the rest for training; the same files and seed give the same split),
    said in one line and kept in the checkpoint and the run folder.

    Args:
        roots: a folder or a list of them; each split is read from every root that has it.
        class_names: the K class names. Default: the 20 VOC classes for ``VOCdevkit/VOC20xx``
            folders; otherwise the sorted names of the training split's objects (a class seen
            only in another split is then an error naming it).
        train, val, test: split list names for each split (``None`` for no such split).
        val_fraction: the share of images for validation where a folder has no split lists.
        split_seed: the seed of that split.
    """

    # its iscrowd flags are VOC's difficult: ignored the devkit's way in COCO's numbers
    difficult_boxes = True

    def __init__(
        self,
        roots: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        class_names: Sequence[str] | None = None,
        train: str | None = "trainval",
        val: str | None = "test",
        test: str | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
    ) -> None:
        self.roots = (
            [Path(roots)] if isinstance(roots, str | os.PathLike) else [Path(r) for r in roots]
        )
        self._class_names = (
            check_class_names(list(class_names), "data.source.class_names")
            if class_names is not None
            else None
        )
        self._given_names = list(self._class_names) if self._class_names is not None else None
        self._classes_from: str | None = None
        self.splits = {"train": train, "val": val, "test": test}
        self.val_fraction, self.split_seed = _fraction(val_fraction), int(split_seed)
        self._made: dict[Path, dict[str, list[str]]] = {}

    def __repr__(self) -> str:
        return f"VOC folder(s) {', '.join(map(str, self.roots))}"

    def prepare(self) -> None:
        for root in self.roots:
            if not split_folders(root):
                _voc_layout(root)

    @property
    def class_names(self) -> list[str]:
        if self._class_names is None:
            if all(_is_vocdevkit(root) for root in self.roots):
                self._class_names = list(VOC_CLASSES)
            else:
                self._class_names = self._names_from_training_split()
        return self._class_names

    @property
    def category_map(self) -> dict[str, int]:
        return {name: i + 1 for i, name in enumerate(self.class_names)}

    def _names_from_training_split(self) -> list[str]:
        found: dict[str, str] = {}
        for _, ann_dir, _, names in self._split_files("train"):
            for name, where in object_class_names(ann_dir, names).items():
                found.setdefault(name, where)
        if not found:
            raise AnnotationError(
                f"data: no objects in the training split of {self}: the class names cannot be "
                "read from it; give data.source.class_names=[...]"
            )
        names = sorted(found)
        for name in names:  # a bad name (empty, "background") names the file that used it
            check_class_names([name], found[name])
        self._classes_from = "the training split's objects"
        rank_zero_info(
            f"data: {len(names)} classes from the training split's objects: {', '.join(names)} "
            "(labels 1..K in this order; data.source.class_names=[...] sets them)"
        )
        return names

    def records(
        self, split: str, checker: DataChecker | None = None
    ) -> list[DetectionRecord] | None:
        if self.splits[split] is None:
            return None
        class_names = self.class_names  # first: it may read the training split's objects
        files = self._split_files(split)
        if not files:
            return None
        records: list[DetectionRecord] = []
        for _, ann_dir, images, names in files:  # ids stay unique across roots
            records += read_voc_files(
                ann_dir,
                images,
                names,
                class_names,
                first_image_id=len(records) + 1,
                checker=checker,
                classes_from=self._classes_from if split != "train" else None,
            )
        return records

    def index_settings(self) -> tuple[dict, list[Path]]:
        """What the index of a split depends on besides the files (for the index cache), and
        the folders whose files it is made from."""
        settings = {
            "source": "voc",
            "roots": [str(r.resolve()) for r in self.roots],
            "class_names": self._given_names,
            "splits": self.splits,
            "val_fraction": self.val_fraction,
            "split_seed": self.split_seed,
        }
        return settings, list(self.roots)

    def index_state(self) -> dict:
        """The class names found while indexing (kept with a cached index)."""
        return {"class_names": self._class_names, "classes_from": self._classes_from}

    def restore_index_state(self, state: dict) -> None:
        if self._class_names is None and state.get("class_names") is not None:
            self._class_names = list(state["class_names"])
            self._classes_from = state.get("classes_from")

    def made_splits(self) -> dict[str, dict[str, list[str]]]:
        """The seeded splits made for folders without split lists: ``{folder: {split:
        names}}`` (empty when every folder has its lists). Reads no split list."""
        if self.splits["train"] is not None or self.splits["val"] is not None:
            for root in self.roots:
                if split_folders(root):
                    continue  # its folders are its splits
                ann_dir, _, lists = _voc_layout(root)
                if _without_lists(lists):
                    self._seeded_split(root, ann_dir)
        return {str(root): splits for root, splits in self._made.items()}

    def _split_files(self, split: str) -> list[tuple[Path, Path, Path, list[str]]]:
        """``(root, annotations folder, images folder, names)`` of every root that has
        ``split``: its split list, or the seeded split made for a folder without lists."""
        name, found, seeded = self.splits[split], [], False
        if name is None:
            return found
        for root in self.roots:
            folders = split_folders(root)
            if folders:  # a folder per split (train/ valid/ test/): the split is the folder
                seeded = True  # not a missing list: a split it lacks is simply absent
                if split in folders:
                    names = sorted(p.stem for p in folders[split].glob("*.xml"))
                    found.append((root, folders[split], folders[split], names))
                continue
            ann_dir, images, lists = _voc_layout(root)
            if lists is not None and (lists / f"{name}.txt").is_file():
                found.append((root, ann_dir, images, read_split_list(lists / f"{name}.txt")))
            elif _without_lists(lists):
                seeded = True
                made = self._seeded_split(root, ann_dir)
                if made.get(split):  # train and val; a test split needs lists
                    found.append((root, ann_dir, images, made[split]))
        if not found and not seeded:
            available = sorted(
                p.stem for root in self.roots for p in (_voc_layout(root)[2] or root).glob("*.txt")
            )
            raise FileNotFoundError(
                f"data.source.{split}={name}: no VOC folder in "
                f"{', '.join(map(str, self.roots))} lists ImageSets/Main/{name}.txt "
                f"(lists there: {', '.join(available) or 'none'})"
            )
        return found

    def _seeded_split(self, root: Path, ann_dir: Path) -> dict[str, list[str]]:
        if root not in self._made:
            names = sorted(p.stem for p in ann_dir.glob("*.xml") if p.is_file())
            self._made[root] = seeded_split(
                names, self.val_fraction, self.split_seed, root, "ImageSets/Main/<split>.txt"
            )
        return self._made[root]


def seeded_split(
    names: Sequence[str], val_fraction: float, seed: int, folder: Path, lists: str
) -> dict[str, list[str]]:
    """``{"train": names, "val": names}``: ``val_fraction`` of ``names`` (at least one, and
    one fewer than all) drawn with ``seed`` for validation; the same names and seed give the
    same split. Said in one line."""
    names = sorted(names)
    order = list(names)
    random.Random(seed).shuffle(order)
    n_val = round(len(names) * val_fraction)
    if val_fraction > 0 and len(names) > 1:
        n_val = min(max(n_val, 1), len(names) - 1)
    val = set(order[:n_val])
    rank_zero_info(
        f"data: {folder} has no split lists ({lists}): a seeded split of its {len(names)} "
        f"annotated images, {len(names) - n_val} train / {n_val} val (data.source.val_fraction="
        f"{val_fraction:g}, data.source.split_seed={seed}); the lists are kept with the run"
    )
    return {"train": [n for n in names if n not in val], "val": [n for n in names if n in val]}


def _fraction(val_fraction: float) -> float:
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"data.source.val_fraction: expected 0 <= it < 1, got {val_fraction}")
    return float(val_fraction)


def _without_lists(lists: Path | None) -> bool:
    """A VOC folder without any split list (or laid out flat): its split is made here."""
    return lists is None or not any(lists.glob("*.txt"))


def _is_vocdevkit(root: Path) -> bool:
    """A Pascal VOC year folder, whose classes are the 20 VOC classes."""
    return root.parent.name == "VOCdevkit" and re.fullmatch(r"VOC20\d\d", root.name) is not None


# the folder pairs datasets are downloaded in (annotations, images), besides VOC's own
_ANNOTATION_DIRS = ("annots", "annotations", "Annots", "xml", "xmls", "labels")
_IMAGE_DIRS = ("images", "Images", "JPEGImages", "imgs", "img")
# Roboflow-style exports: a folder per split, each XML beside its image
SPLIT_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "test": ("test",)}


def _has_xml(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() == ".xml" for p in folder.iterdir())


def split_folders(root: Path) -> dict[str, Path]:
    """``{split: folder}`` of a root laid out as a folder per split with the XMLs beside the
    images (``train/``, ``valid/``, ``test/``, as Roboflow exports); empty otherwise."""
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        folder = next((root / n for n in names if _has_xml(root / n)), None)
        if folder is not None:
            found[split] = folder
    return found if "train" in found else {}


def _voc_layout(root: Path) -> tuple[Path, Path, Path | None]:
    """``(annotations, images, split lists or None)`` of a VOC folder: a VOC year folder
    (``Annotations/``, ``JPEGImages/``), XMLs beside their images, or an annotation folder
    beside an image folder as downloads name them (``annots/`` + ``images/``, ...)."""
    if (root / "Annotations").is_dir():
        return root / "Annotations", root / "JPEGImages", root / "ImageSets" / "Main"
    if _has_xml(root):
        return root, root, None  # each XML beside its image
    for folder in _ANNOTATION_DIRS:
        if _has_xml(root / folder):
            images = next((root / n for n in _IMAGE_DIRS if (root / n).is_dir()), None)
            return root / folder, images or root / folder, None
    raise FileNotFoundError(f"{root}: not a VOC folder: {_what_is_there(root)}")


def _what_is_there(root: Path) -> str:
    """What a folder that is not a VOC folder holds, and the layouts that are, for an error."""
    layouts = (
        "expected Annotations/ + JPEGImages/, .xml files beside the images, an annotation "
        f"folder ({'/, '.join(_ANNOTATION_DIRS)}/) beside an image folder "
        f"({'/, '.join(_IMAGE_DIRS)}/), or train/ valid/ test/ folders of those; "
        "data.source.roots=[<the folder that holds them>]"
    )
    if not root.exists():
        return f"it does not exist; {layouts}"
    if not root.is_dir():
        return f"it is a file; {layouts}"
    entries = sorted(root.iterdir())
    shown = []
    for entry in entries[:8]:
        if entry.is_dir():
            kinds = sorted({p.suffix.lower() or "(no suffix)" for p in entry.iterdir()})[:4]
            shown.append(f"{entry.name}/ ({', '.join(kinds) or 'empty'})")
        else:
            shown.append(entry.name)
    more = f", ... ({len(entries)} entries)" if len(entries) > 8 else ""
    return f"found {', '.join(shown) or 'nothing'}{more}; {layouts}"


class COCOSource:
    """A COCO folder: ``annotations/instances_<split>.json`` and images in ``<split>/``.

    Args:
        root: the folder holding ``annotations/``.
        train, val, test: split names (``train2017``, ``val2017``; ``None`` for no such split).
    """

    difficult_boxes = False  # COCO's crowd regions (YOLO has none)

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
    """A YOLO folder: ``images/<split>/``, ``labels/<split>/*.txt`` and ``classes.txt``; or
    ``images/*`` and ``labels/*.txt`` without split folders, which get a seeded split
    (``val_fraction`` for validation; the same files and seed give the same split).

    Args:
        root: the folder holding ``images/``, ``labels/`` and ``classes.txt``.
        train, val, test: split folder names (``None`` for no such split).
        class_names: override ``classes.txt``.
        val_fraction: the share of images for validation without split folders.
        split_seed: the seed of that split.
    """

    difficult_boxes = False  # COCO's crowd regions (YOLO has none)

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        train: str | None = "train",
        val: str | None = "val",
        test: str | None = None,
        class_names: Sequence[str] | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.splits = {"train": train, "val": val, "test": test}
        self._class_names = (
            check_class_names(list(class_names), "data.source.class_names")
            if class_names is not None
            else None
        )
        self.val_fraction, self.split_seed = _fraction(val_fraction), int(split_seed)
        self._made: dict[str, list[str]] | None = None
        self._flat: bool | None = None  # images/ without split folders (see _unsplit)

    def __repr__(self) -> str:
        return f"YOLO folder {self.root}"

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
        if (self.root / "images" / name).is_dir() or not self._unsplit():
            return read_yolo(self.root, name, self.class_names, checker=checker)
        if split == "test":  # a test split needs its own folder
            return None
        return read_yolo_files(
            self.root / "images",
            self.root / "labels",
            self.class_names,
            stems=self.made_splits()[str(self.root)][split],
            checker=checker,
        )

    def _unsplit(self) -> bool:
        """Images directly in ``images/``, and no split folder there. Looked at once: it is
        asked at every checkpoint save (through :meth:`made_splits`), and ``images/`` can hold
        a hundred thousand files."""
        if self._flat is None:
            images = self.root / "images"
            entries = list(images.iterdir()) if images.is_dir() else []
            self._flat = not any(p.is_dir() for p in entries) and any(
                p.suffix.lower() in IMAGE_EXTENSIONS for p in entries
            )
        return self._flat

    def made_splits(self) -> dict[str, dict[str, list[str]]]:
        """The seeded split made when the folder has no split folders: ``{folder: {split:
        stems}}`` (empty otherwise)."""
        if not self._unsplit():
            return {}
        if self._made is None:
            stems = [p.stem for p in yolo_images(self.root / "images")]
            self._made = seeded_split(
                stems, self.val_fraction, self.split_seed, self.root, "images/<split>/"
            )
        return {str(self.root): self._made}


class ShapesSource:
    """The synthetic shapes dataset, generated on first use and read back as VOC, COCO or YOLO.

    Each parameter set has its own folder under ``root``, named by its parameters and their hash
    (:func:`~lightdet.data.shapes.folder_name`), generated once and never rewritten for other
    parameters, so runs with other sizes or counts never change each other's data. A ``root``
    that holds this very dataset itself (what older lightdet versions and the tests write) is
    read as it is.

    Args:
        root: the folder of the shapes datasets (``data/shapes``).
        format: ``voc``, ``coco`` or ``yolo``: which of the written layouts to read.
        **spec: :class:`~lightdet.data.shapes.ShapesSpec` fields (sizes, counts, classes, seed).
    """

    synthetic = True  # learnt from random weights (model.net.pretrained=auto keeps them)

    def __init__(
        self, root: str | os.PathLike, *, format: Literal["voc", "coco", "yolo"] = "voc", **spec
    ) -> None:
        if format not in ("voc", "coco", "yolo"):
            raise ValueError(f"data.source.format: expected voc, coco or yolo, got {format!r}")
        for key in ("classes", "coco_category_ids"):
            if spec.get(key) is not None:
                spec[key] = tuple(spec[key])
        self.spec = ShapesSpec(**spec)
        self.root = Path(root)
        self.folder = (
            self.root if is_generated(self.root, self.spec) else self.root / folder_name(self.spec)
        )
        self.format = format
        self.difficult_boxes = format == "voc"
        splits = {s: (s if getattr(self.spec, f"num_{s}") else None) for s in SPLITS}
        if format == "voc":
            self._reader = VOCSource(self.folder / "VOC", class_names=self.spec.classes, **splits)
        elif format == "coco":
            self._reader = COCOSource(self.folder / "COCO", **splits)
        else:
            self._reader = YOLOSource(self.folder / "YOLO", class_names=self.spec.classes, **splits)

    def prepare(self) -> None:
        if self.folder != self.root:  # a folder of datasets: new, empty or lightdet's only
            outputs.claim(self.root, "data.source.root", "shapes")
        ensure_shapes(self.folder, self.spec)

    def check_writable(self) -> None:
        """What :meth:`prepare` would refuse (a root that is a file, a user's folder, no write
        permission), without writing: checked when the config is composed."""
        if not is_generated(self.folder, self.spec):
            if self.folder != self.root:
                outputs.check_free(self.root, "data.source.root")
            check_generatable(self.folder, self.spec)

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

    def __getattr__(self, name: str):
        """The index cache's hooks, where the format's reader has them (VOC)."""
        if (
            name in ("index_settings", "index_state", "restore_index_state")
            and "_reader" in self.__dict__
        ):
            return getattr(self._reader, name)
        raise AttributeError(name)


__all__ = ["COCOSource", "SHAPE_CLASSES", "ShapesSource", "VOCSource", "YOLOSource"]
