"""SSD (Liu et al., 2016) on any torchvision classifier, torchvision's SSD300-VGG16 recipe, and
SSDlite320 on MobileNetV3-Large.

The generic builder takes a classifier's trunk up to stride 32, keeps the outputs at two strides
(default 16 and 32), adds extra blocks that halve the resolution down to 1x1, and sizes the
default boxes from the number of feature maps: everything is derived from the backbone and the
input size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection import ssd as tv_ssd
from torchvision.models.detection import ssdlite as tv_ssdlite
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDHead

from lightdet.models.backbones import MOBILENETS, RESNETS, download_guard, strided_outputs

SSD_BACKBONES = ("vgg11", "vgg16", "vgg16_bn", *RESNETS, *MOBILENETS)
SSDBackbone = Literal[SSD_BACKBONES]  # the names model.net.backbone takes
PRETRAINED = ("none", "imagenet", "coco")


class SSDFeatures(nn.Module):
    """A trunk with taps at some of its blocks, then extra blocks: an SSD backbone.

    Args:
        trunk: blocks run in order (a classifier's feature layers).
        taps: names of the trunk blocks whose outputs are feature maps.
        extras: blocks run after the trunk, each output a feature map.
    """

    def __init__(self, trunk: nn.Sequential, taps: Sequence[str], extras: nn.ModuleList) -> None:
        super().__init__()
        last = list(trunk._modules).index(taps[-1])
        self.trunk = nn.Sequential(OrderedDict(list(trunk.named_children())[: last + 1]))
        self.taps = list(taps)
        self.extras = extras

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        maps = []
        for name, block in self.trunk.named_children():
            x = block(x)
            if name in self.taps:
                maps.append(x)
        for block in self.extras:
            x = block(x)
            maps.append(x)
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


def _trunk(name: str, pretrained: bool) -> nn.Sequential:
    """The classifier's layers up to its last stride-32 block, as a named sequence."""
    if name not in SSD_BACKBONES:
        raise ValueError(f"model.net.backbone: {name!r} is not one of {SSD_BACKBONES}")
    weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    with download_guard("model.net.pretrained=none"):
        net = torchvision.models.get_model(name, weights=weights)
    if name in RESNETS:
        keep = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(OrderedDict((k, getattr(net, k)) for k in keep))
    return net.features  # VGG and MobileNet: a Sequential ending at stride 32


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 reduce, 3x3 stride-2 (SSD's extra layers), with BatchNorm for training from scratch."""
    mid = max(out_channels // 2, 16)
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def ssd_aspect_ratios(num_maps: int) -> list[list[int]]:
    """SSD's aspect ratios per map: {2} on the first and the last two, {2, 3} between."""
    return [[2] if i == 0 or i >= num_maps - 2 else [2, 3] for i in range(num_maps)]


def build_ssd(
    *,
    num_classes: int,
    backbone: SSDBackbone = "vgg16",
    size: int = 300,
    feature_strides: Sequence[int] = (16, 32),
    extra_channels: Sequence[int] = (512, 256, 256, 256),
    min_ratio: float = 0.1,
    max_ratio: float = 0.9,
    pretrained: str = "none",
    score_thresh: float = 0.01,
    nms_thresh: float = 0.45,
    detections_per_img: int = 200,
    iou_thresh: float = 0.5,
) -> SSD:
    """SSD on any torchvision classification backbone, with everything derived from it.

    Args:
        num_classes: K + 1 (background included).
        backbone: ``vgg11/16/16_bn``, ``resnet18/34/50/101``, ``mobilenet_v3_large/small``.
        size: square input size (SSD resizes every image to it).
        feature_strides: trunk strides used as feature maps (their blocks found by a probe).
        extra_channels: one extra block per entry, each halving the resolution.
        min_ratio, max_ratio: default-box scales, as fractions of the input, from the first
            map to the last (SSD's s_min and s_max).
        pretrained: ``none`` or ``imagenet`` (the trunk); COCO weights: :func:`build_ssd300_vgg16`.
        score_thresh, nms_thresh, detections_per_img: inference post-processing.
        iou_thresh: IoU for a default box to match a ground-truth box.
    """
    if pretrained not in ("none", "imagenet"):
        raise ValueError(
            f"model.net.pretrained: expected 'none' or 'imagenet' (COCO: ssd300_vgg16), "
            f"got {pretrained!r}"
        )
    trunk = _trunk(backbone, pretrained == "imagenet")
    taps, channels = strided_outputs(trunk, strides=tuple(feature_strides))
    extras, previous = nn.ModuleList(), channels[-1]
    for out in extra_channels:
        extras.append(_extra_block(previous, out))
        previous = out
    features = SSDFeatures(trunk, taps, extras)
    num_maps = len(taps) + len(extras)
    anchors = DefaultBoxGenerator(
        ssd_aspect_ratios(num_maps), min_ratio=min_ratio, max_ratio=max_ratio
    )
    out_channels = _probe_channels(features, size)
    head = SSDHead(out_channels, anchors.num_anchors_per_location(), num_classes)
    return SSD(
        features,
        anchors,
        (size, size),
        num_classes,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        iou_thresh=iou_thresh,
    )


def _probe_channels(features: nn.Module, size: int) -> list[int]:
    was_training = features.training
    features.eval()
    with torch.no_grad():
        maps = features(torch.zeros(1, 3, size, size))
    features.train(was_training)
    if any(m.shape[-1] < 1 for m in maps.values()):
        raise ValueError(f"model.net.size={size} is too small for {len(maps)} feature maps")
    return [m.shape[1] for m in maps.values()]


def build_ssd300_vgg16(
    *,
    num_classes: int,
    pretrained: str = "none",
    trainable_backbone_layers: int | None = None,
    **kwargs,
) -> SSD:
    """torchvision's SSD300-VGG16 recipe (the paper's model: conv4_3 and fc7 taps, L2 norm).

    Args:
        num_classes: K + 1.
        pretrained: ``none``, ``imagenet`` (VGG16 features) or ``coco`` (whole detector; the
            class layer is replaced when K differs).
        trainable_backbone_layers: VGG stages left trainable.
        **kwargs: passed to torchvision's ``SSD`` (``score_thresh``, ``nms_thresh``, ...).
    """
    coco = tv_ssd.SSD300_VGG16_Weights.COCO_V1
    return _torchvision_ssd(
        tv_ssd.ssd300_vgg16, coco, num_classes, pretrained, trainable_backbone_layers, **kwargs
    )


def build_ssdlite(
    *,
    num_classes: int,
    pretrained: str = "none",
    trainable_backbone_layers: int | None = None,
    **kwargs,
) -> SSD:
    """SSDlite320 on MobileNetV3-Large (torchvision's recipe; 320 px input).

    Args: as :func:`build_ssd300_vgg16`.
    """
    builder = tv_ssdlite.ssdlite320_mobilenet_v3_large
    coco = tv_ssdlite.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1
    return _torchvision_ssd(
        builder, coco, num_classes, pretrained, trainable_backbone_layers, **kwargs
    )


def _torchvision_ssd(builder, coco, num_classes, pretrained, trainable_layers, **kwargs) -> SSD:
    if pretrained not in PRETRAINED:
        raise ValueError(f"model.net.pretrained: expected one of {PRETRAINED}, got {pretrained!r}")
    if pretrained != "coco":
        backbone_weights = "DEFAULT" if pretrained == "imagenet" else None
        with download_guard("model.net.pretrained=none"):
            return builder(
                weights=None,
                weights_backbone=backbone_weights,
                num_classes=num_classes,
                trainable_backbone_layers=trainable_layers,
                **kwargs,
            )
    with download_guard("model.net.pretrained=none (or imagenet)"):
        model = builder(weights=coco, trainable_backbone_layers=trainable_layers, **kwargs)
    if num_classes != len(coco.meta["categories"]):  # a new class layer for a new class set
        fresh = builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
        model.head.classification_head = fresh.head.classification_head
    return model
