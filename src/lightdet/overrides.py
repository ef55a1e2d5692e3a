"""Config values written in Hydra's override grammar: how a run's config is recorded in ClearML
(``Hydra/<dotted.key>``) and how search trials set their values.

A ``clearml-agent`` re-applies every ``Hydra/*`` parameter as an override before composing the
config, so each value must read back unchanged. No ClearML import here: the local search uses
these without the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

HYDRA_SECTION = "Hydra"
_BARE = re.compile(r"[A-Za-z_][\w\-./]*")
_KEYWORDS = {"true", "false", "null", "none", "nan", "inf", "-inf", "+inf"}


def override_value(value: Any) -> str:
    """A value written the way Hydra's override grammar reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        return text  # a single interpolation stays live: edits of its source still propagate
    if _BARE.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def hydra_overrides(
    cfg: DictConfig, exclude: tuple[str, ...] = ("paths", "hydra")
) -> dict[str, str]:
    """Every leaf of ``cfg`` (unresolved) as ``{"dotted.key": override value}``.

    Lists and empty mappings are leaves. ``paths`` is left out: it is machine-specific, and an
    agent on another machine must use its own.
    """
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, child in node.items():
                walk(child, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = override_value(node)

    container = OmegaConf.to_container(cfg, resolve=False)
    for key, child in container.items():
        if key not in exclude:
            walk(child, key)
    return flat
