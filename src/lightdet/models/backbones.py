"""FPN backbones on torchvision classification networks, and guarded weight downloads."""

from __future__ import annotations

import contextlib
import urllib.error
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelP6P7

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
MOBILENETS = ("mobilenet_v3_large", "mobilenet_v3_small")
# the names model.net.backbone takes, as a type: the config schema checks it at composition
FPNBackbone = Literal[RESNETS + MOBILENETS]


@contextlib.contextmanager
def download_guard(setting: str) -> Iterator[None]:
    """Turn a failed weight download into an error that names the setting avoiding it."""
    try:
        yield
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        raise RuntimeError(
            f"could not download pretrained weights ({err}). Without internet, train from random "
            f"weights with {setting}, or put the file in torch's cache "
            "($TORCH_HOME/hub/checkpoints)."
        ) from err


def fpn_backbone(
    name: str,
    *,
    out_channels: int = 256,
    pretrained: bool = False,
    trainable_layers: int | None = None,
    extra_blocks: ExtraFPNBlock | None = None,
    strides: tuple[int, ...] = (8, 16, 32),
    norm_layer: Callable[..., nn.Module] | None = None,
) -> BackboneWithFPN:
    """A torchvision classifier's outputs at ``strides`` (C3-C5 by default) under an FPN.

    Args:
        name: ``resnet18/34/50/101`` or ``mobilenet_v3_large/small``.
        out_channels: FPN width (torchvision uses 256; 64 is much faster on a CPU).
        pretrained: load ImageNet weights (then BatchNorm is frozen, as in torchvision).
        trainable_layers: stages left trainable, from the top (default 3 pretrained, all otherwise).
        extra_blocks: levels above C5 (default P6/P7 from P5, as in RetinaNet).
        strides: which trunk outputs feed the FPN (Faster R-CNN: 4, 8, 16, 32).
        norm_layer: normalization inside the FPN (Faster R-CNN v2: BatchNorm).
    """
    if name not in RESNETS + MOBILENETS:
        raise ValueError(f"model.net.backbone: {name!r} is not one of {RESNETS + MOBILENETS}")
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    with download_guard("model.net.pretrained=none"):
        net = torchvision.models.get_model(name, weights=weights, norm_layer=norm_layer)
    if name in RESNETS:
        layer = {4: "layer1", 8: "layer2", 16: "layer3", 32: "layer4"}
        body, stages = net, ["conv1", "layer1", "layer2", "layer3", "layer4"]
        names = [layer[s] for s in strides]
        channels = [net.inplanes // (32 // s) for s in strides]  # layer4 has inplanes channels
    else:
        body = net.features
        names, channels = strided_outputs(body, strides=tuple(strides))
        stages = [
            str(i) for i, block in enumerate(body) if i == 0 or getattr(block, "_is_cn", False)
        ]
    _freeze(
        body,
        stages,
        trainable_layers if trainable_layers is not None else (3 if pretrained else len(stages)),
    )
    return BackboneWithFPN(
        body,
        return_layers={n: str(i) for i, n in enumerate(names)},
        in_channels_list=channels,
        out_channels=out_channels,
        extra_blocks=extra_blocks or LastLevelP6P7(out_channels, out_channels),
        norm_layer=norm_layer,
    )


def strided_outputs(
    features: nn.Sequential, strides: tuple[int, ...]
) -> tuple[list[str], list[int]]:
    """Names and channels of the last block at each output stride, found by a probe forward."""
    was_training = features.training
    features.eval()
    x, size, found = torch.zeros(1, 3, 256, 256), 256, {}
    with torch.no_grad():
        for name, block in features.named_children():
            x = block(x)
            found[size // x.shape[-1]] = (name, x.shape[1])  # later blocks overwrite earlier ones
    features.train(was_training)
    missing = [s for s in strides if s not in found]
    if missing:
        raise ValueError(f"backbone has no output at strides {missing}")
    return [found[s][0] for s in strides], [found[s][1] for s in strides]


def _freeze(body: nn.Module, stages: list[str], trainable: int) -> None:
    """Freeze every parameter outside the top ``trainable`` stages (torchvision's rule)."""
    if not 0 <= trainable <= len(stages):
        raise ValueError(
            f"model.net.trainable_backbone_layers must be in [0, {len(stages)}], got {trainable}"
        )
    if trainable == len(stages):
        return
    first_trainable = stages[len(stages) - trainable] if trainable else None
    frozen = True
    for name, child in body.named_children():
        if name == first_trainable:
            frozen = False
        if frozen:
            child.requires_grad_(False)
