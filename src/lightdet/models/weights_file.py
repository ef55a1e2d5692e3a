"""Weights from a local file (``model.net.pretrained=<path>``), for machines without internet.

The file may be a plain state dict, a torchvision weights file (a classification network for
the backbone, e.g. ``resnet18-f37072fd.pth``, or a whole detector, e.g.
``retinanet_resnet50_fpn_coco-eeacb38b.pth``), or a checkpoint with the weights under
``state_dict`` (lightdet, Lightning) or ``model`` (torchvision's reference scripts). Where the
tensors go is found by their names and shapes: the place in the detector where most of them fit
(the whole detector, its backbone, its trunk, ...). Tensors that do not fit (a class layer for
another number of classes, a classifier's ``fc``) are left out and named in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

NAMED = ("auto", "none", "imagenet", "coco")  # kinds of weights by name; anything else is a file
_WRAPPERS = ("", "net.", "module.", "model.", "backbone.", "body.", "features.")
_MIN_SHARE = 0.5  # of the file's tensors that must fit


class WeightsFileError(ValueError):
    """A weights file that is missing, unreadable, or does not fit the model."""


def is_weights_file(pretrained: object) -> bool:
    """Whether ``model.net.pretrained`` names a file rather than a kind of weights."""
    return isinstance(pretrained, str | os.PathLike) and str(pretrained) not in NAMED


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from lightdet.guard import load_checkpoint

    if not path.is_file():
        raise WeightsFileError(
            f"model.net.pretrained={path}: no such file (give auto, none, "
            "imagenet, coco, or the path of a weights file)"
        )
    try:
        state = load_checkpoint(path)
    except Exception as err:
        raise WeightsFileError(
            f"model.net.pretrained={path}: not a readable weights file "
            f"({type(err).__name__}: {err})"
        ) from err
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = (
        {str(k): v for k, v in state.items() if torch.is_tensor(v)}
        if isinstance(state, dict)
        else {}
    )
    if not tensors:
        raise WeightsFileError(
            f"model.net.pretrained={path}: holds no tensors by name (expected "
            "a state dict or a checkpoint with one)"
        )
    return tensors


def _placements(net: nn.Module) -> list[str]:
    """Prefixes where a file's names may start inside the detector: the detector itself, and
    every module in it (``backbone.``, ``backbone.body.``, ...)."""
    return [""] + [f"{name}." for name, _ in net.named_modules() if name]


def fit_weights(net: nn.Module, tensors: dict[str, torch.Tensor]) -> tuple[dict, str, str]:
    """The largest set of the file's tensors that fit ``net`` by name and shape, over the ways
    of reading the names (a wrapper prefix left out) and the places in the detector.

    Returns:
        (``{name in net: tensor}``, the prefix left out of the file's names, the place).
    """
    target = {k: v.shape for k, v in net.state_dict().items()}
    best: tuple[dict, str, str] = ({}, "", "")
    places = _placements(net)
    for wrapper in _WRAPPERS:
        names = {k[len(wrapper) :]: v for k, v in tensors.items() if k.startswith(wrapper)}
        if len(names) <= len(best[0]):
            continue
        for place in places:
            fitting = {place + k: v for k, v in names.items() if target.get(place + k) == v.shape}
            if len(fitting) > len(best[0]):
                best = (fitting, wrapper, place)
    return best


def load_weights_file(net: nn.Module, path: str | os.PathLike) -> dict[str, int]:
    """Load what fits of a weights file into ``net``; say where it went and what was left out.

    Raises:
        WeightsFileError: the file is missing or unreadable, or under half of its tensors fit.
    """
    path = Path(path)
    tensors = _tensors(path)
    fitting, wrapper, place = fit_weights(net, tensors)
    if len(fitting) < _MIN_SHARE * len(tensors):
        raise WeightsFileError(
            f"model.net.pretrained={path}: only {len(fitting)} of its {len(tensors)} tensors fit "
            f"this model by name and shape (first names in the file: "
            f"{', '.join(list(tensors)[:3])}); is it for another backbone?"
        )
    with torch.no_grad():
        state = net.state_dict()
        for name, value in fitting.items():
            state[name].copy_(value)
    used = {k[len(place) :] for k in fitting}
    unused = [k for k in tensors if k.startswith(wrapper) and k[len(wrapper) :] not in used]
    unused += [k for k in tensors if not k.startswith(wrapper)]
    where = f"into {place.rstrip('.')}" if place else "into the whole detector"
    log.info(
        "model.net.pretrained: %d of %d tensors from %s loaded %s%s",
        len(fitting),
        len(tensors),
        path.name,
        where,
        f"; not used: {', '.join(unused[:4])}{' ...' if len(unused) > 4 else ''}" if unused else "",
    )
    return {"loaded": len(fitting), "in_file": len(tensors), "unused": len(unused)}
