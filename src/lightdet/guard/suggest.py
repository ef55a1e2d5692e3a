"""A mistyped config key gets the closest existing keys ("did you mean ...?")."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Sequence

from omegaconf import DictConfig

_UNKNOWN = re.compile(r"Could not override '([^']+)'|Could not delete from config\. '([^']+)'")


def config_keys(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    """Every dotted key of ``cfg`` (groups and leaves), Hydra's own node left out."""
    for key in cfg.keys():
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key}"
        yield path
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            yield from config_keys(node, f"{path}.")


def did_you_mean(
    message: str, overrides: Sequence[str], compose: Callable[[list[str]], DictConfig]
) -> str | None:
    """The line to add to Hydra's message about an unknown key, or None. ``compose`` composes
    the same config with the given overrides (here: without the mistyped one)."""
    found = _UNKNOWN.search(message)
    if not found:
        return None
    key = found.group(1) or found.group(2)
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        keys = list(config_keys(compose(rest)))
    except Exception:  # another problem in the rest: Hydra's message alone
        return None
    parent, _, name = key.rpartition(".")
    if parent in keys:  # a mistyped name under a known parent: compare with its siblings
        siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
        matches = [siblings[m] for m in difflib.get_close_matches(name, siblings, n=3, cutoff=0.6)]
    else:
        matches = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    return f"Did you mean {' or '.join(matches)}?" if matches else None
