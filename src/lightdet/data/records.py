"""The one record format every reader produces."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class DetectionRecord:
    """One annotated image, as read from disk (before any transform).

    Attributes:
        image_path: absolute path of the image file.
        image_id: integer id, unique within the split.
        width, height: image size in pixels as stated by the annotation.
        boxes: float32 [N, 4] xyxy in absolute pixels, 0-based.
        labels: int64 [N] contiguous class indices in 1..K (0 is background).
        iscrowd: bool [N], VOC ``difficult`` / COCO ``iscrowd``: ignored by evaluation.
        name: human-readable id (VOC and YOLO file stem, COCO file name).
        source: where the annotation came from, for messages (``.../0001.xml``,
            ``.../instances_train.json: images[3]``).
        box_refs: per box, its field in the source (``object[2].bndbox``,
            ``annotations[17].bbox``), for messages.
    """

    image_path: Path
    image_id: int
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    name: str = ""
    source: str = ""
    box_refs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.iscrowd.size == 0 and self.labels.size:
            self.iscrowd = np.zeros(len(self.labels), dtype=bool)
        self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(-1)
        self.source = self.source or str(self.image_path)
        if not self.box_refs:
            self.box_refs = [f"box[{i}]" for i in range(len(self.boxes))]
        if not len(self.boxes) == len(self.labels) == len(self.iscrowd) == len(self.box_refs):
            raise ValueError(
                f"{self.image_path}: boxes ({len(self.boxes)}), labels ({len(self.labels)}), "
                f"iscrowd ({len(self.iscrowd)}) and box_refs ({len(self.box_refs)}) differ in "
                "length"
            )


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and the field."""


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` as an absolute path, refusing a name that leaves ``root`` by what it
    says (an absolute path, ``..`` past the root). Symlinks are not followed here: an image
    that is a link into another folder, as dataset tools write, is the user's to make.

    Raises:
        AnnotationError: ``where`` names the file and field the name came from.
    """
    if "\x00" in str(relative):
        raise AnnotationError(f"{where}: {relative!r} holds a NUL byte, which no file name can")
    name = os.path.normpath(str(relative).replace("\\", "/"))
    if os.path.isabs(name) or name == ".." or name.startswith("../"):
        raise AnnotationError(f"{where}: {relative!r} resolves outside {root}")
    return Path(os.path.abspath(Path(root) / name))
