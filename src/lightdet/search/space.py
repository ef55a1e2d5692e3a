"""A search space in ``conf/hpo/*.yaml``: dotted training-config keys, each with a range.

search_space:
  model.net.focal_gamma: {type: float, low: 0.0, high: 3.0}
  model.optimizer.lr: {type: float, low: 3.0e-4, high: 5.0e-3, log: true}
  data.batch_size: {type: int, low: 4, high: 16}
  model.net.backbone: {type: categorical, choices: [resnet18, resnet34]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lightdet.overrides import HYDRA_SECTION, override_value

TYPES = ("float", "int", "categorical")


def check_space(space: Mapping[str, Mapping]) -> None:
    """Raise naming the key and field of a malformed search-space entry."""
    if not space:
        raise ValueError("hpo.search_space: empty")
    for key, spec in space.items():
        kind = spec.get("type")
        if kind not in TYPES:
            raise ValueError(f"hpo.search_space.{key}.type: expected one of {TYPES}, got {kind!r}")
        if kind == "categorical":
            if not spec.get("choices"):
                raise ValueError(f"hpo.search_space.{key}.choices: missing or empty")
        elif not spec.get("low", 0) < spec.get("high", 0):
            raise ValueError(f"hpo.search_space.{key}: needs low < high")


def suggest(trial, key: str, spec: Mapping) -> Any:
    """Sample ``key`` in an Optuna trial."""
    kind = spec["type"]
    if kind == "float":
        return trial.suggest_float(key, spec["low"], spec["high"], log=bool(spec.get("log")))
    if kind == "int":
        return trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
    return trial.suggest_categorical(key, list(spec["choices"]))


def trial_overrides(params: Mapping[str, Any], base: Sequence[str] = ()) -> list[str]:
    """A trial's training overrides: ``base`` (the space's ``train_overrides``), then the
    sampled values as Hydra overrides."""
    return [*base, *(f"{key}={override_value(value)}" for key, value in params.items())]


def distribution(spec: Mapping):
    """The entry as an Optuna distribution (for trials recorded elsewhere, e.g. by ClearML)."""
    import optuna

    if spec["type"] == "categorical":
        return optuna.distributions.CategoricalDistribution(list(spec["choices"]))
    if spec["type"] == "int":
        return optuna.distributions.IntDistribution(spec["low"], spec["high"])
    return optuna.distributions.FloatDistribution(
        spec["low"], spec["high"], log=bool(spec.get("log"))
    )


def clearml_parameters(space: Mapping[str, Mapping]) -> list:
    """The same space as ClearML parameter ranges over the base task's ``Hydra/`` parameters."""
    from clearml.automation import (
        DiscreteParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        UniformParameterRange,
    )

    params = []
    for key, spec in space.items():
        name = f"{HYDRA_SECTION}/{key}"
        if spec["type"] == "categorical":
            params.append(DiscreteParameterRange(name, values=list(spec["choices"])))
        elif spec["type"] == "int":
            params.append(
                UniformIntegerParameterRange(name, min_value=spec["low"], max_value=spec["high"])
            )
        elif spec.get("log"):  # ClearML's log range takes exponents of 10
            params.append(
                LogUniformParameterRange(
                    name, min_value=math.log10(spec["low"]), max_value=math.log10(spec["high"])
                )
            )
        else:
            params.append(
                UniformParameterRange(name, min_value=spec["low"], max_value=spec["high"])
            )
    return params
