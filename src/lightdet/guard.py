"""What may be instantiated and unpickled.

Configs arrive from the command line, from a task cloned and edited in ClearML, and stored inside
checkpoints; ``hydra.utils.instantiate`` would call whatever ``_target_`` they name. Only the
project's own targets are allowed. The list is extended by the machine (the
``LIGHTDET_ALLOWED_TARGETS`` environment variable, comma-separated prefixes), never by a config.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

ALLOWED_TARGETS = (
    "lightdet.",
    "torch.optim.",
    "pytorch_lightning.callbacks.",
    "pytorch_lightning.Trainer",
    "pytorch_lightning.trainer.trainer.Trainer",
)
# hydra.utils.get_method returns a function by name (e.g. a batch-size function): only ours
METHOD_TARGETS = {"hydra.utils.get_method": "lightdet."}


class UnsafeConfigError(ValueError):
    """A config names a callable the project does not expect."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects other than tensors and plain containers."""


def allowed_prefixes() -> tuple[str, ...]:
    extra = os.environ.get("LIGHTDET_ALLOWED_TARGETS", "")
    return ALLOWED_TARGETS + tuple(p.strip() for p in extra.split(",") if p.strip())


def check_targets(cfg: DictConfig | Mapping, where: str = "config") -> None:
    """Raise naming the key of any ``_target_`` outside the allowed prefixes."""
    container = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    prefixes = allowed_prefixes()

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            target = node.get("_target_")
            if target is not None:
                _check(str(target), node, key, prefixes, where)
            for k, child in node.items():
                walk(child, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{key}[{i}]")

    walk(container, "")


def _check(target: str, node: Mapping, key: str, prefixes: tuple, where: str) -> None:
    name = f"{key}._target_" if key else "_target_"
    if "${" in target:
        raise UnsafeConfigError(
            f"{where}: {name}={target!r}: an interpolated target is not allowed"
        )
    if target in METHOD_TARGETS:
        path = str(node.get("path", ""))
        if not path.startswith(METHOD_TARGETS[target]):
            raise UnsafeConfigError(
                f"{where}: {key}.path={path!r}: {target} may only name {METHOD_TARGETS[target]}*"
            )
        return
    if not target.startswith(prefixes):
        raise UnsafeConfigError(
            f"{where}: {name}={target!r} is not an allowed target (allowed: "
            f"{', '.join(p + '*' for p in prefixes)}; extend with LIGHTDET_ALLOWED_TARGETS)"
        )


def load_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{Path(path)}: refused: the file holds objects other than tensors and plain "
            f"containers (loaded with weights_only=True; {str(err).splitlines()[0]})"
        ) from err


class CheckpointMismatchError(ValueError):
    """A checkpoint trained for other classes or another architecture than the run's."""


def check_checkpoint_fits(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], class_names: list[str]
) -> dict:
    """Compare a checkpoint with the model it is about to be loaded into; returns the checkpoint.

    Raises:
        CheckpointMismatchError: naming the class lists, or the first differing parameters and
            the model configs, instead of PyTorch's dump of every mismatched shape.
    """
    ckpt = load_checkpoint(path)
    hp = ckpt.get("hyper_parameters", {})
    if "class_names" in hp and list(hp["class_names"]) != list(class_names):
        raise CheckpointMismatchError(
            f"{Path(path)}: trained on classes {hp['class_names']}, the data has {class_names}"
        )
    saved = ckpt.get("state_dict", {})
    missing = sorted(set(state_dict) - set(saved))
    unexpected = sorted(set(saved) - set(state_dict))
    reshaped = [
        f"{k} {list(saved[k].shape)} vs {list(v.shape)}"
        for k, v in state_dict.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        net = hp.get("config", {}).get("model", {}).get("net", {})
        problems = "; ".join(
            f"{what} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
            for what, items in (("missing", missing), ("unexpected", unexpected),
                                ("shape checkpoint vs model", reshaped)) if items
        )  # fmt: skip
        raise CheckpointMismatchError(
            f"{Path(path)}: another architecture than this run's model: {problems}. "
            f"The checkpoint's model.net: {net}"
        )
    return ckpt
