"""Class identity, derived in one place: a dataset's K class names give the detectors'
``num_classes = K + 1`` (label 0 is background, labels 1..K are ``class_names[label - 1]``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BACKGROUND = "background"


def num_classes(class_names: Sequence[str]) -> int:
    """K + 1: what every torchvision detector is built with."""
    return len(class_names) + 1


def label_enumeration(class_names: Sequence[str]) -> dict[str, int]:
    """``{"background": 0, name: label, ...}``: ClearML's label enumeration of tasks and models."""
    return {BACKGROUND: 0, **{name: i + 1 for i, name in enumerate(class_names)}}


def class_name(class_names: Sequence[str], label: int) -> str:
    """The name of ``label`` (1..K), or the number when it is out of range."""
    return class_names[label - 1] if 1 <= label <= len(class_names) else str(label)


def with_background(class_names: Sequence[str]) -> list[str]:
    """The K + 1 names indexed by label: a confusion matrix's rows and columns."""
    return [BACKGROUND, *class_names]


def category_ids(class_names: Sequence[str], category_map: Mapping) -> dict[int, int]:
    """Label (1..K) -> the dataset's own category id, for files other tools read (COCO
    results): COCO's category ids and YOLO's class indices from ``category_map``; the label
    itself where the dataset has no numeric ids (VOC, whose map is name -> label)."""
    ids = {label: label for label in range(1, len(class_names) + 1)}
    for key, label in category_map.items():
        if isinstance(key, int) and not isinstance(key, bool) and int(label) in ids:
            ids[int(label)] = key
    return ids


def check_class_names(names: Sequence, where: str) -> list[str]:
    """The K class names, refused when two are the same (surrounding white space aside) or one
    is named like label 0 (``background``, whatever its case): either would make two labels one
    name in the label enumeration, the confusion matrix and every report.

    Args:
        names: the names, in label order.
        where: the file and field they came from, or the config key.

    Raises:
        AnnotationError: naming ``where``, the index and the name.
    """
    from lightdet.data.records import AnnotationError

    seen: dict[str, tuple[int, str]] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise AnnotationError(f"{where}[{i}]: expected a non-empty class name, found {name!r}")
        if name.strip().casefold() == BACKGROUND:
            raise AnnotationError(
                f"{where}[{i}]: {name!r} is the name of label 0 (no object); rename the class"
            )
        key = name.strip()  # ' cat' and 'cat' read as one name to anyone looking at a table
        if key in seen:
            first, spelt = seen[key]
            again = "again" if spelt == name else f"again (as {spelt!r})"
            raise AnnotationError(
                f"{where}[{i}]: class name {name!r} {again} (first at [{first}]); two classes "
                "cannot share a name, surrounding white space aside"
            )
        seen[key] = (i, name)
    return list(names)
