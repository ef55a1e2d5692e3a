"""Which OmegaConf interpolations a config may hold.

A resolver runs when a value is read, after any check of the string has passed: ``${oc.create:
{_target_: ...}}`` becomes a node with a target, ``${oc.env:CLEARML_API_SECRET_KEY}`` copies a
credential into the config (and from there into checkpoints and the ClearML task), and
``${oc.decode:...}`` parses text into nodes. Every interpolation is therefore parsed with
OmegaConf's own grammar and only these are accepted, wherever a config comes from:

- a reference to another key (``${model.name}``), which builds nothing new;
- ``now`` (time stamps), ``hydra`` (Hydra's own run information), ``oc.select`` (a key with a
  default);
- ``oc.env`` for ``LIGHTDET_ROOT`` only (the project's ``paths.root_dir``).

A resolver whose name is itself an interpolation (``${${name}:...}``) is refused, since its name
is only known when it runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import GrammarParseError
from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser
from omegaconf.grammar_parser import parse

from lightdet.guard.targets import UnsafeConfigError

RESOLVERS = ("now", "hydra", "oc.select")
ENV_VARIABLES = ("LIGHTDET_ROOT",)  # what `oc.env` may read


def resolver_calls(value: str) -> Iterator[tuple[str, list[str]]]:
    """``(resolver name, argument texts)`` for every resolver call in ``value``, nested ones too.

    Raises:
        GrammarParseError: the value is not a valid OmegaConf string.
    """
    if "${" not in value:
        return
    stack = [parse(value)]
    while stack:
        tree = stack.pop()
        if isinstance(tree, OmegaConfGrammarParser.InterpolationResolverContext):
            seq = tree.sequence()
            args = [element.getText().strip() for element in seq.element()] if seq else []
            yield tree.resolverName().getText(), args
        stack += list(tree.getChildren()) if hasattr(tree, "getChildren") else []


def check_value(value: str, key: str, where: str, *, allow_any: bool = True) -> None:
    """Raise naming ``key`` if ``value`` calls a resolver outside the allowed ones (any
    interpolation at all when ``allow_any`` is False)."""
    if "${" not in value:
        return
    if not allow_any:
        raise UnsafeConfigError(
            f"{where}: {key}={value!r}: no interpolation is allowed here (it was saved resolved)"
        )
    try:
        calls = list(resolver_calls(value))
    except GrammarParseError as err:
        raise UnsafeConfigError(f"{where}: {key}={value!r}: not a valid interpolation") from err
    for name, args in calls:
        if name in RESOLVERS:
            continue
        if name == "oc.env" and args and args[0] in ENV_VARIABLES:
            continue
        what = f"oc.env:{args[0] if args else ''}" if name == "oc.env" else name
        raise UnsafeConfigError(
            f"{where}: {key}={value!r}: the resolver {what!r} is not allowed (allowed: "
            f"references to other keys, {', '.join(RESOLVERS)}, oc.env:{'|'.join(ENV_VARIABLES)})"
        )


def strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted key, string)`` for every string leaf (and string key) of a config, unresolved."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, Mapping):
        for k, child in node.items():
            child_key = f"{key}.{k}" if key else str(k)
            if isinstance(k, str):
                yield child_key, k
            yield from strings(child, child_key)
    elif isinstance(node, list | tuple):
        for i, child in enumerate(node):
            yield from strings(child, f"{key}[{i}]")
    elif isinstance(node, str):
        yield key, node


def check_interpolations(
    cfg: DictConfig | Mapping,
    where: str = "config",
    *,
    allow_any: bool = True,
    skip: tuple[str, ...] = ("hydra",),
) -> None:
    """Check every string of ``cfg`` (but the top-level keys in ``skip``: Hydra's own node)."""
    for key, value in strings(cfg):
        if key.split(".", 1)[0].split("[", 1)[0] not in skip:
            check_value(value, key, where, allow_any=allow_any)
