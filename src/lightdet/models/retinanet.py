"""RetinaNet builder: a stock torchvision ``RetinaNet`` with a configurable focal-loss head."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal

from torch import nn
from torchvision.models.detection import RetinaNet, RetinaNet_ResNet50_FPN_Weights
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead

from lightdet.models.backbones import FPNBackbone, download_guard, fpn_backbone
from lightdet.models.heads import FocalClassificationHead

PRETRAINED = ("none", "imagenet", "coco")
BOX_LOSSES = ("l1", "smooth_l1", "giou", "diou", "ciou")


def build_retinanet(
    *,
    num_classes: int,
    backbone: FPNBackbone = "resnet50",
    fpn_channels: int = 256,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    prior_probability: float = 0.01,
    head_norm: Literal["group"] | None = None,
    box_loss: Literal["l1", "smooth_l1", "giou", "diou", "ciou"] = "l1",
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    scales_per_octave: int = 3,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    pretrained: str = "none",
    trainable_backbone_layers: int | None = None,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 300,
) -> RetinaNet:
    """RetinaNet (Lin et al., 2017) on an FPN backbone; defaults are torchvision's ResNet-50 recipe.

    Args:
        num_classes: K + 1 (background included).
        backbone: ``resnet18/34/50/101`` or ``mobilenet_v3_large/small``.
        fpn_channels: width of the FPN and of both heads.
        focal_alpha, focal_gamma: focal loss parameters (``-1`` and ``0`` give plain sigmoid CE).
        prior_probability: initial foreground probability (classification bias init).
        head_norm: ``None`` (torchvision's v1 heads) or ``"group"``: GroupNorm after every head
            conv, as in RetinaNet v2. Needed for narrow heads trained from scratch: the fixed
            std=0.01 init shrinks the signal ~4x per conv at 64 channels, and learning stalls.
        box_loss: box regression loss: ``l1`` (v1), ``giou`` (RetinaNet v2), ``smooth_l1``,
            ``diou`` or ``ciou``.
        min_size, max_size: the detector's internal resize (shorter / longer side).
        anchor_sizes: base anchor size per pyramid level P3..P7.
        scales_per_octave: anchor scales per level (sizes x 2^(i/n)).
        aspect_ratios: anchor aspect ratios, the same at every level.
        pretrained: ``none`` (random), ``imagenet`` (backbone) or ``coco`` (whole detector,
            ResNet-50 with 256 channels only; the class layer is replaced if K differs).
        trainable_backbone_layers: backbone stages left trainable (default: torchvision's).
        score_thresh, nms_thresh, detections_per_img: inference post-processing.
    """
    if pretrained not in PRETRAINED:
        raise ValueError(f"model.net.pretrained: expected one of {PRETRAINED}, got {pretrained!r}")
    if pretrained == "coco" and (backbone != "resnet50" or fpn_channels != 256 or head_norm):
        raise ValueError(
            "model.net.pretrained=coco needs backbone=resnet50, fpn_channels=256, head_norm=null"
        )
    body = fpn_backbone(
        backbone,
        out_channels=fpn_channels,
        pretrained=pretrained == "imagenet",
        trainable_layers=trainable_backbone_layers,
    )
    anchors = AnchorGenerator(
        sizes=tuple(
            tuple(int(s * 2 ** (i / scales_per_octave)) for i in range(scales_per_octave))
            for s in anchor_sizes
        ),
        aspect_ratios=(tuple(aspect_ratios),) * len(anchor_sizes),
    )
    num_anchors = anchors.num_anchors_per_location()[0]
    norm_layer = _head_norm(head_norm, fpn_channels)
    head = RetinaNetHead(fpn_channels, num_anchors, num_classes, norm_layer=norm_layer)
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"model.net.box_loss: expected one of {BOX_LOSSES}, got {box_loss!r}")
    head.regression_head._loss_type = box_loss  # what torchvision's v2 builder sets for GIoU
    head.classification_head = FocalClassificationHead(
        fpn_channels,
        num_anchors,
        num_classes,
        focal_alpha=focal_alpha,
        focal_gamma=focal_gamma,
        prior_probability=prior_probability,
        norm_layer=norm_layer,
    )
    model = RetinaNet(
        body,
        num_classes,
        min_size=min_size,
        max_size=max_size,
        anchor_generator=anchors,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
    )
    if pretrained == "coco":
        _load_coco(model, num_classes)
    return model


def _head_norm(name: str | None, channels: int) -> Callable[..., nn.Module] | None:
    if name in (None, "none"):
        return None
    if name == "group":
        return partial(nn.GroupNorm, math.gcd(32, channels))  # 32 groups when they divide evenly
    raise ValueError(f"model.net.head_norm: expected null or 'group', got {name!r}")


def _load_coco(model: RetinaNet, num_classes: int) -> None:
    weights = RetinaNet_ResNet50_FPN_Weights.COCO_V1
    with download_guard("model.net.pretrained=none (or imagenet)"):
        state = weights.get_state_dict(progress=True, check_hash=True)
    if num_classes != len(weights.meta["categories"]):  # a new class layer for a new class set
        state = {
            k: v
            for k, v in state.items()
            if not k.startswith("head.classification_head.cls_logits")
        }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("head.classification_head.cls_logits") for k in missing):
        raise RuntimeError(f"COCO weights do not fit: missing {missing}, unexpected {unexpected}")
    for module in model.backbone.body.modules():  # torchvision's COCO_V1 recipe: eps 0 in frozen BN
        if hasattr(module, "eps") and type(module).__name__ == "FrozenBatchNorm2d":
            module.eps = 0.0
