"""FCOS (Tian et al., 2019) with the focal loss's alpha/gamma and prior probability configurable.

torchvision's ``FCOSHead.compute_loss`` calls ``sigmoid_focal_loss`` with its defaults; the head
injected here (``FCOS(..., head=...)``) recomputes only the classification term with the
configured values and keeps torchvision's box (GIoU) and centre-ness terms.

So the focal loss's forward runs twice a step (torchvision's result is dropped; no backward
runs through it). Computing it once would mean writing torchvision's box and centre-ness terms
again here, to be kept in step with torchvision by hand; the second forward is one elementwise
pass over the logits, small beside the step it belongs to.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead

from lightdet.models.backbones import FPNBackbone, fpn_backbone
from lightdet.models.heads import check_focal_gamma, focal_loss, prior_bias


class FocalFCOSHead(FCOSHead):
    """FCOS head whose classification loss takes ``focal_alpha`` / ``focal_gamma``."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        *,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        prior_probability: float = 0.01,
        num_convs: int = 4,
    ) -> None:
        super().__init__(in_channels, num_anchors, num_classes, num_convs)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = check_focal_gamma(focal_gamma)
        torch.nn.init.constant_(
            self.classification_head.cls_logits.bias, prior_bias(prior_probability)
        )

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        losses = super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        cls_logits = head_outputs["cls_logits"]  # [N, A, C]
        gt_classes = torch.zeros_like(cls_logits)  # [N, A, C]
        for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
            foreground = matched >= 0  # [A]
            gt_classes[i, foreground, target["labels"][matched[foreground]]] = 1.0
        num_foreground = int(sum(int((m >= 0).sum()) for m in matched_idxs))
        loss = focal_loss(cls_logits, gt_classes, alpha=self.focal_alpha, gamma=self.focal_gamma)
        losses["classification"] = loss / max(1, num_foreground)
        return losses


def build_fcos(
    *,
    num_classes: int,
    backbone: FPNBackbone = "resnet50",
    fpn_channels: int = 256,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    prior_probability: float = 0.01,
    min_size: int = 800,
    max_size: int = 1333,
    center_sampling_radius: float = 1.5,
    pretrained: str = "none",
    trainable_backbone_layers: int | None = None,
    score_thresh: float = 0.2,
    nms_thresh: float = 0.6,
    detections_per_img: int = 100,
) -> FCOS:
    """FCOS on an FPN backbone (P3-P7); defaults are torchvision's ResNet-50 recipe.

    Args:
        num_classes: K + 1 (background included).
        backbone: ``resnet18/34/50/101`` or ``mobilenet_v3_large/small``.
        fpn_channels: width of the FPN and of the heads (GroupNorm, as in FCOS).
        focal_alpha, focal_gamma, prior_probability: as in :func:`build_retinanet`.
        min_size, max_size: the detector's internal resize.
        center_sampling_radius: positives lie within this many strides of a box centre.
        pretrained: ``none`` or ``imagenet`` (backbone). COCO weights exist for ResNet-50 only
            and are not wired here: fine-tune from ImageNet.
        trainable_backbone_layers: backbone stages left trainable.
        score_thresh, nms_thresh, detections_per_img: inference post-processing.
    """
    if pretrained not in ("none", "imagenet"):
        raise ValueError(f"model.net.pretrained: expected 'none' or 'imagenet', got {pretrained!r}")
    body = fpn_backbone(
        backbone,
        out_channels=fpn_channels,
        pretrained=pretrained == "imagenet",
        trainable_layers=trainable_backbone_layers,
    )  # P3-P5 and P6/P7 from P5, as torchvision's FCOS
    anchors = AnchorGenerator(
        sizes=((8,), (16,), (32,), (64,), (128,)), aspect_ratios=((1.0,),) * 5
    )
    head = FocalFCOSHead(
        fpn_channels,
        1,
        num_classes,
        focal_alpha=focal_alpha,
        focal_gamma=focal_gamma,
        prior_probability=prior_probability,
    )
    return FCOS(
        body,
        num_classes,
        min_size=min_size,
        max_size=max_size,
        anchor_generator=anchors,
        head=head,
        center_sampling_radius=center_sampling_radius,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
    )
