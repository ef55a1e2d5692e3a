"""Faster R-CNN (Ren et al., 2015) with an FPN, in torchvision's v1 and v2 variants.

v1: the FPN Faster R-CNN of torchvision's ``fasterrcnn_resnet50_fpn``: one-conv RPN head, two-FC
box head. v2 (``fasterrcnn_resnet50_fpn_v2``, after Li et al. 2021): BatchNorm in the FPN, a
two-conv RPN head and a four-conv + FC box head with BatchNorm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn
from torchvision.models.detection import faster_rcnn as tv
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNConvFCHead, RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from lightdet.models.backbones import MOBILENETS, FPNBackbone, download_guard, fpn_backbone

PRETRAINED = ("none", "imagenet", "coco")
COCO_RECIPES = {  # (backbone, version) -> torchvision builder and its COCO weights
    ("resnet50", "v1"): (tv.fasterrcnn_resnet50_fpn, tv.FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    ("resnet50", "v2"): (
        tv.fasterrcnn_resnet50_fpn_v2,
        tv.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    ),
    ("mobilenet_v3_large", "v1"): (
        tv.fasterrcnn_mobilenet_v3_large_fpn,
        tv.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
    ),
}


def build_faster_rcnn(
    *,
    num_classes: int,
    backbone: FPNBackbone = "resnet50",
    version: Literal["v1", "v2"] = "v1",
    fpn_channels: int = 256,
    strides: Sequence[int] | None = None,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    min_size: int = 800,
    max_size: int = 1333,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_batch_size_per_image: int = 256,
    rpn_positive_fraction: float = 0.5,
    box_batch_size_per_image: int = 512,
    box_positive_fraction: float = 0.25,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    pretrained: str = "none",
    trainable_backbone_layers: int | None = None,
) -> FasterRCNN:
    """Two-stage Faster R-CNN on an FPN; defaults are torchvision's ResNet-50 recipe.

    Args:
        num_classes: K + 1 (background included).
        backbone: ``resnet18/34/50/101`` or ``mobilenet_v3_large/small``.
        version: ``v1`` or ``v2`` (see the module docstring).
        fpn_channels: FPN width.
        strides: trunk outputs feeding the FPN (default 4-32 for ResNets, 16-32 for MobileNets);
            a max-pooled level is added on top.
        anchor_sizes: one RPN anchor size per FPN level (one more than ``strides``).
        aspect_ratios: RPN anchor aspect ratios.
        min_size, max_size: the detector's internal resize.
        rpn_pre_nms_top_n_*, rpn_post_nms_top_n_*: proposals kept before / after the RPN's NMS.
        rpn_batch_size_per_image, rpn_positive_fraction: anchors sampled per image for the RPN
            loss, and the positive share of them.
        box_batch_size_per_image, box_positive_fraction: proposals sampled per image for the
            ROI heads' loss, and the positive share.
        box_score_thresh, box_nms_thresh, box_detections_per_img: inference post-processing.
        pretrained: ``none``, ``imagenet`` (trunk) or ``coco`` (whole detector: ResNet-50 v1/v2
            or MobileNetV3-Large v1, torchvision's anchors and widths; the box predictor is
            replaced when K differs).
        trainable_backbone_layers: trunk stages left trainable.
    """
    if version not in ("v1", "v2"):
        raise ValueError(f"model.net.version: expected 'v1' or 'v2', got {version!r}")
    if pretrained not in PRETRAINED:
        raise ValueError(f"model.net.pretrained: expected one of {PRETRAINED}, got {pretrained!r}")
    settings = dict(
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        rpn_positive_fraction=rpn_positive_fraction,
        box_batch_size_per_image=box_batch_size_per_image,
        box_positive_fraction=box_positive_fraction,
        box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh,
        box_detections_per_img=box_detections_per_img,
    )
    if pretrained == "coco":
        return _coco(backbone, version, num_classes, trainable_backbone_layers, settings)
    if strides is None:
        strides = (16, 32) if backbone in MOBILENETS else (4, 8, 16, 32)
    if len(anchor_sizes) != len(strides) + 1:
        raise ValueError(
            f"model.net.anchor_sizes: one per FPN level ({len(strides) + 1}), "
            f"got {list(anchor_sizes)}"
        )
    body = fpn_backbone(
        backbone,
        out_channels=fpn_channels,
        pretrained=pretrained == "imagenet",
        trainable_layers=trainable_backbone_layers,
        extra_blocks=LastLevelMaxPool(),
        strides=tuple(strides),
        norm_layer=nn.BatchNorm2d if version == "v2" else None,
    )
    anchors = AnchorGenerator(
        tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes)
    )
    num_anchors = anchors.num_anchors_per_location()[0]
    levels = [str(i) for i in range(len(strides))]  # the FPN outputs, without the pooled level
    roi_pool = MultiScaleRoIAlign(featmap_names=levels, output_size=7, sampling_ratio=2)
    extra = {}
    if version == "v2":
        extra = {
            "rpn_head": RPNHead(fpn_channels, num_anchors, conv_depth=2),
            "box_head": FastRCNNConvFCHead(
                (fpn_channels, 7, 7), [fpn_channels] * 4, [1024], norm_layer=nn.BatchNorm2d
            ),
        }
    return FasterRCNN(
        body, num_classes, rpn_anchor_generator=anchors, box_roi_pool=roi_pool, **extra, **settings
    )


def _coco(backbone, version, num_classes, trainable_layers, settings) -> FasterRCNN:
    if (backbone, version) not in COCO_RECIPES:
        raise ValueError(f"model.net.pretrained=coco: COCO weights exist for {list(COCO_RECIPES)}")
    builder, weights = COCO_RECIPES[(backbone, version)]
    with download_guard("model.net.pretrained=none (or imagenet)"):
        model = builder(weights=weights, trainable_backbone_layers=trainable_layers, **settings)
    if num_classes != len(weights.meta["categories"]):  # a new box predictor for a new class set
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = tv.FastRCNNPredictor(in_features, num_classes)
    return model
