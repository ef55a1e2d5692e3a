"""Config values against Python type annotations: the vocabulary of the config schema.

The schema (:mod:`lightdet.guard.schema`) states each key's type as an annotation: the
builders' and Lightning's own signatures for keys under a ``_target_``, a table for the rest.
This module answers whether a composed value fits one (:func:`fits`) and says what an
annotation allows in words (:func:`describe`), for a one-line error.

Values are what Hydra's grammar and YAML produce: ``bool``, ``int``, ``float``, ``str``,
``None``, lists and mappings (``ListConfig``/``DictConfig`` or plain). A number is accepted
where text is expected (``task_name=2024`` parses as an integer); a float must be finite unless
its :class:`Range` says otherwise; a boolean is never a number.
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union

from omegaconf import DictConfig, ListConfig

_LISTS = (list, tuple, set, frozenset, Sequence, MutableSequence, Iterable)
_MAPPINGS = (dict, Mapping)


@dataclass(frozen=True)
class Range:
    """Bounds on a number (``Annotated[int, Range(ge=1)]``); ``finite=False`` admits inf."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True

    def holds(self, value: Any) -> bool:
        if not _is_number(value):
            return True  # the type says what a non-number may be
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def __str__(self) -> str:
        low = f">= {_num(self.ge)}" if self.ge is not None else None
        low = f"> {_num(self.gt)}" if self.gt is not None else low
        high = f"<= {_num(self.le)}" if self.le is not None else None
        high = f"< {_num(self.lt)}" if self.lt is not None else high
        return " and ".join(part for part in (low, high) if part)


@dataclass(frozen=True)
class Size:
    """How many items a list needs: ``Annotated[list[int], Size(ge=1)]``."""

    ge: int = 1

    def holds(self, value: Any) -> bool:
        return not _is_list(value) or len(value) >= self.ge

    def __str__(self) -> str:
        return f"of at least {self.ge} item{'s' if self.ge != 1 else ''}"


@dataclass(frozen=True)
class Items:
    """Bounds on every item of a list: ``Annotated[list[float], Items(Range(gt=0))]``."""

    limit: Range

    def holds(self, value: Any) -> bool:
        return not _is_list(value) or all(self.limit.holds(v) for v in value)

    def __str__(self) -> str:
        return f"each {self.limit}"


@dataclass(frozen=True)
class Pattern:
    """Text of a given shape, said in words: ``Annotated[str, Pattern(check, "stage/name")]``."""

    check: Callable[[str], bool]
    words: str

    def holds(self, value: Any) -> bool:
        if _is_number(value):  # a number given where text is expected: its text must match
            value = str(value)
        return not isinstance(value, str) or bool(self.check(value))

    def __str__(self) -> str:
        return self.words


class Node:
    """The annotation of a key that holds a node building an object (``_target_``), whose own
    arguments the schema checks where it walks into it."""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | ListConfig)


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict | DictConfig)


def _is_node(value: Any) -> bool:
    """A config node that builds an object (``_target_``): its own parameters are checked."""
    return _is_mapping(value) and "_target_" in value


def fits(value: Any, annotation: Any) -> bool:
    """Whether a composed config value fits ``annotation`` (unknown annotations fit anything)."""
    if annotation in (Any, object) or annotation is None and value is None:
        return True
    if isinstance(annotation, str | typing.ForwardRef | typing.TypeVar):
        return True  # an annotation that could not be resolved: nothing to check against
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        metas = annotation.__metadata__
        if args[0] is float and any(isinstance(m, Range) and not m.finite for m in metas):
            base = _is_number(value) and not math.isnan(value)  # inf admitted by its Range
        else:
            base = fits(value, args[0])
        return base and all(meta.holds(value) for meta in metas if hasattr(meta, "holds"))
    if origin is Union or origin is types.UnionType:
        return any(fits(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if origin is not None:
        return _fits_generic(value, origin, args)
    return _fits_class(value, annotation)


def _fits_generic(value: Any, origin: Any, args: tuple) -> bool:
    if origin in _LISTS:
        if not _is_list(value):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args))
        return not args or all(fits(v, args[0]) for v in value)
    if origin in _MAPPINGS:
        return _is_mapping(value) and (
            len(args) < 2 or all(fits(v, args[1]) for v in value.values())
        )
    if origin is type:
        return _is_node(value)
    if (
        origin in (Callable, typing.Callable)
        or callable(origin)
        and origin.__module__
        in (
            "collections.abc",
            "typing",
        )
    ):
        return _is_node(value)
    return _fits_class(value, origin)


def _fits_class(value: Any, cls: Any) -> bool:
    if cls is bool:
        return isinstance(value, bool)
    if cls is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if cls is float:
        return _is_number(value) and math.isfinite(value)
    if cls is str:
        return isinstance(value, str) or _is_number(value)
    if cls in (list, tuple) or cls in _LISTS:
        return _is_list(value)
    if cls in _MAPPINGS:
        return _is_mapping(value)
    if _is_node(value):
        return True  # built from its own node; its parameters are checked there
    if isinstance(cls, type) and issubclass(cls, PurePath) or cls is os.PathLike:
        return isinstance(value, str)
    name = _name(cls)
    if name in ("torch.Tensor", "torch.device", "torch.dtype", "datetime.timedelta"):
        return _is_number(value) if name == "torch.Tensor" else isinstance(value, str)
    return isinstance(cls, type) and isinstance(value, cls)


def describe(annotation: Any) -> str:
    """An annotation in words: ``Optional[Annotated[int, Range(ge=1)]]`` -> an integer >= 1
    or null."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        limits = [str(m) for m in annotation.__metadata__ if hasattr(m, "holds") and str(m)]
        return " ".join([describe(args[0]), *limits])
    if origin is Union or origin is types.UnionType:
        choices = [c for a in args if typing.get_origin(a) is Literal for c in typing.get_args(a)]
        words = [describe(a) for a in args if a is not type(None) and a not in _literals(args)]
        if choices:
            words.append(describe(Literal[tuple(dict.fromkeys(choices))]))
        none = ["null"] if type(None) in args else []
        return " or ".join(dict.fromkeys(words + none))
    if origin is Literal:
        return str(args[0]) if len(args) == 1 else "one of " + ", ".join(str(a) for a in args)
    if annotation is type(None) or annotation is None:
        return "null"
    if origin in _LISTS:
        item = _plural(describe(args[0])) if args and args[-1] is not Ellipsis else ""
        inner = f" of ({item})" if " or " in item else f" of {item}" if item else ""
        if origin is tuple and args and args[-1] is not Ellipsis:
            inner = f" of {len(args)} values"
        return f"a list{inner}"
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        return "a mapping"
    if _name(annotation) == "torch.Tensor":
        return "a number"
    if annotation is Node:
        return "a _target_ node"
    return _WORDS.get(annotation, f"a {getattr(annotation, '__name__', 'value')} node")


def _literals(args: tuple) -> list:
    return [a for a in args if typing.get_origin(a) is Literal]


def with_range(annotation: Any, *limits: Range | Size | Items) -> Any:
    """``annotation`` with each limit on the arms it applies to: a :class:`Range` on the
    numeric ones (``Optional[int]`` -> an integer >= 1 or null), a :class:`Size` or
    :class:`Items` on the lists."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return Union[tuple(with_range(a, *limits) for a in args)]  # noqa: UP007
    base = args[0] if origin is Annotated else annotation
    numeric = base in (int, float) or _name(base) == "torch.Tensor"
    listed = typing.get_origin(base) in _LISTS or base in (list, tuple)
    fitting = [m for m in limits if (numeric if isinstance(m, Range) else listed)]
    return Annotated[(annotation, *fitting)] if fitting else annotation


def _name(cls: Any) -> str:
    return getattr(cls, "__module__", "") + "." + getattr(cls, "__qualname__", "")


_WORDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "text",
    list: "a list",
    tuple: "a list",
}


def _plural(words: str) -> str:
    for single, plural in (("an integer", "integers"), ("a number", "numbers")):
        if words.startswith(single):
            return plural + words[len(single) :]
    return words
