"""Typed reads of annotation fields, each failure one :class:`AnnotationError` in one style:
``<file>: <field>: expected <what>, found <value> (<type>)``.

The readers call these on every field they use, so a malformed file of any kind (a missing
key, a string where a number belongs, a list where an object belongs, ``1.0`` as an id) is
named where it is, never a raw Python exception from deep inside the reader. JSON booleans
are not numbers here (``true`` is not a coordinate), and ids are integers as COCO's tools
compare them (``1`` and ``1.0`` are not two images).
"""

from __future__ import annotations

import math
from typing import Any

from lightdet.data.records import AnnotationError

_MISSING = object()


def _found(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def fail(where: str, expected: str, value: Any = _MISSING) -> AnnotationError:
    """The error for ``where`` (``file: field``): what was expected, what was found."""
    found = "nothing (missing)" if value is _MISSING else _found(value)
    return AnnotationError(f"{where}: expected {expected}, found {found}")


def get(container: dict, key: str, where: str) -> Any:
    """``container[key]``, or ``<where>: missing`` (``where`` names the field itself)."""
    if key not in container:
        raise AnnotationError(f"{where}: missing")
    return container[key]


def read(container: dict, key: str, where: str, kind) -> Any:
    """``kind(container[key])``, the field named ``<where>.<key>`` in any error."""
    field = f"{where}.{key}"
    return kind(get(container, key, field), field)


def mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise fail(where, "an object {...}", value)
    return value


def sequence(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise fail(where, "a list [...]", value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer_id(value: Any, where: str) -> int:
    """An id: an integer (not a bool, not ``1.0``, not ``"1"``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail(where, "an integer id", value)
    return value


def number(value: Any, where: str) -> float:
    """A coordinate: an int or float (NaN and inf pass, for the box checks to refuse by rule)."""
    if not is_number(value):
        raise fail(where, "a number", value)
    return float(value)


def size(value: Any, where: str) -> int:
    """An image side in pixels: a positive whole number (``64`` or ``64.0``)."""
    if not is_number(value) or not math.isfinite(value) or value != int(value) or value < 1:
        raise fail(where, "a positive whole number of pixels", value)
    if value > 2**31 - 1:
        raise fail(where, "a number of pixels below 2**31", value)
    return int(value)


def text(value: Any, where: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise fail(where, "a non-empty string", value)
    return value


def flag(value: Any, where: str) -> bool:
    """``0``/``1`` or ``false``/``true`` (COCO's iscrowd, VOC's difficult)."""
    if value in (0, 1) and (isinstance(value, int)):
        return bool(value)
    raise fail(where, "0 or 1", value)
