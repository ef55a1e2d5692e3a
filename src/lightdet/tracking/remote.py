"""A run that ``clearml-agent`` started for a task: the task's ``Hydra/*`` values must be the
composed config's, or the run stops.

ClearML's Hydra binding reads a cloned task's ``Hydra/*`` parameters and re-applies each as an
override before Hydra composes the config, inside ``try: ... except Exception: pass``
(clearml ``binding/hydra_bind.py``): when reading them fails (a server error, a timeout, a
changed SDK), the run composes its defaults and trains with them without a word, and the
dashboard shows a task whose parameters say one thing and whose results come from another.
After ``Task.init`` (which loads the task again) each of its ``Hydra/*`` values is compared
with the composed config; one that did not arrive stops the run with one line.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf

from lightdet.overrides import HYDRA_SECTION, override_value

# the binding's own switch (use the OmegaConf section instead of Hydra/*), not a config key
_ALLOW_FULL_EDIT = "_allow_omegaconf_edit_"
_ABSENT = object()


class UnappliedParameters(CompactHydraException):
    """The task's parameters did not reach the composed config (printed as one line)."""


@functools.lru_cache(maxsize=1)
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _parsed(text: str) -> Any:
    """An override value as Hydra reads it (``"3.50"`` and ``"3.5"`` alike); the text
    itself where it does not parse."""
    try:
        return _parser().parse_override(f"key={text}").value()
    except Exception:  # noqa: BLE001  any grammar error: compare the raw text
        return text


def unapplied(
    parameters: Mapping[str, str], cfg: DictConfig, choices: Mapping[str, Any]
) -> dict[str, tuple[str, str]]:
    """The task's ``Hydra/<key>`` values that the composed ``cfg`` does not hold:
    ``{key: (task value, composed value)}``, the latter ``"(absent)"`` where ``cfg`` has no
    such key.

    Args:
        parameters: the task's parameters (``Task.get_parameters``), every section.
        cfg: the composed config (unresolved values compare as written).
        choices: the config groups chosen (Hydra's ``runtime.choices``): ``Hydra/model``
            names a group, not a key.
    """
    prefix = HYDRA_SECTION + "/"
    container = OmegaConf.to_container(cfg, resolve=False)
    missed = {}
    for name, text in parameters.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lstrip("+")
        if key == _ALLOW_FULL_EDIT or key.startswith("~"):
            continue
        text = "" if text is None else str(text)
        composed = choices[key] if key in choices else _lookup(container, key)
        if composed is _ABSENT:
            missed[key] = (text, "(absent)")
        elif _parsed(text) != _parsed(override_value(composed)):
            missed[key] = (text, override_value(composed))
    return missed


def _lookup(container: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(container, Mapping) or part not in container:
            return _ABSENT
        container = container[part]
    return container


def check_applied(task, cfg: DictConfig) -> None:
    """Stop (:class:`UnappliedParameters`) when ``task``, the task an agent started this run
    for, holds ``Hydra/*`` values the composed ``cfg`` does not; a task that asks for its
    ``OmegaConf`` section instead (the binding's ``_allow_omegaconf_edit_``) is left alone."""
    from hydra.core.hydra_config import HydraConfig

    parameters = task.get_parameters(backwards_compatibility=False)
    if str(parameters.get(f"{HYDRA_SECTION}/{_ALLOW_FULL_EDIT}", "")).lower() == "true":
        return
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    missed = unapplied(parameters, cfg, dict(choices))
    if not missed:
        return
    items = list(missed.items())
    shown = ", ".join(f"{HYDRA_SECTION}/{k}={v} (composed: {ours})" for k, (v, ours) in items[:3])
    more = f" and {len(items) - 3} more ({', '.join(k for k, _ in items[3:])})" if items[3:] else ""
    raise UnappliedParameters(
        f"ClearML: task {task.id} was started by an agent, but {len(items)} of its parameters did "
        f"not reach the composed config: {shown}{more}. ClearML's Hydra binding could not apply "
        "them (it ignores its own errors), so this run would train with other values than the "
        "task says; stopped. Check the agent's connection to the server and enqueue the task "
        "again."
    )
