"""Classification heads with a configurable focal loss.

torchvision's RetinaNet head calls ``sigmoid_focal_loss`` with its default alpha=0.25, gamma=2;
injecting this head (``RetinaNet(..., head=...)``) makes both configurable without subclassing the
detector. The parameter names match torchvision's, so COCO checkpoints load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.detection.retinanet import RetinaNetClassificationHead
from torchvision.ops import sigmoid_focal_loss


def focal_loss(inputs: Tensor, targets: Tensor, *, alpha: float, gamma: float) -> Tensor:
    """torchvision's ``sigmoid_focal_loss`` (``reduction="sum"``), with a finite gradient for
    every gamma: ``(1 - p_t) ** gamma`` has an infinite slope at 0 when gamma < 1, so a
    certain prediction (p_t rounding to 1, at a logit of about 17 in float32, sooner in bf16)
    gave NaN gradients and NaN weights (the RetinaNet paper's gamma 0.5 could not train). For
    gamma < 1 the factor's base is held at the dtype's smallest positive value; for gamma >= 1
    the result is torchvision's, bit for bit.
    """
    if gamma >= 1:
        return sigmoid_focal_loss(inputs, targets, alpha=alpha, gamma=gamma, reduction="sum")
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * (1 - p_t).clamp(min=torch.finfo(p_t.dtype).tiny) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


def prior_bias(prior_probability: float) -> float:
    """Logit bias that makes the initial foreground probability ``prior_probability``."""
    if not 0.0 < prior_probability < 1.0:
        raise ValueError(f"model.net.prior_probability must be in (0, 1), got {prior_probability}")
    return -math.log((1.0 - prior_probability) / prior_probability)


def check_focal_gamma(focal_gamma: float) -> float:
    """The focusing exponent, refused when negative (shared by the RetinaNet and FCOS heads)."""
    if focal_gamma < 0:
        raise ValueError(f"model.net.focal_gamma must be >= 0, got {focal_gamma}")
    return float(focal_gamma)


class FocalClassificationHead(RetinaNetClassificationHead):
    """RetinaNet classification head whose loss takes ``focal_alpha`` and ``focal_gamma``.

    Args:
        in_channels: channels of every FPN level.
        num_anchors: anchors per location.
        num_classes: K + 1 (column 0 is background and never a positive target).
        focal_alpha: weight of positives in (0, 1); negative disables the weighting.
        focal_gamma: focusing exponent; 0 with ``focal_alpha < 0`` is plain sigmoid cross-entropy.
        prior_probability: initial foreground probability of every anchor (sets the logit bias).
        norm_layer: normalization of the head's convolutions (GroupNorm for RetinaNet v2).
    """

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        *,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        prior_probability: float = 0.01,
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        prior_bias(prior_probability)  # validate before torchvision takes a log of it
        super().__init__(in_channels, num_anchors, num_classes, prior_probability, norm_layer)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = check_focal_gamma(focal_gamma)

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        matched_idxs: list[Tensor],
    ) -> Tensor:
        """torchvision's reduction: per image, sum over valid anchors / max(1, #foreground)."""
        losses = []
        for target, cls_logits, matched in zip(targets, head_outputs["cls_logits"], matched_idxs):
            foreground = matched >= 0  # [A]
            gt_classes = torch.zeros_like(cls_logits)  # [A, C]
            gt_classes[foreground, target["labels"][matched[foreground]]] = 1.0
            valid = matched != self.BETWEEN_THRESHOLDS  # anchors between IoU thresholds are ignored
            loss = focal_loss(
                cls_logits[valid], gt_classes[valid], alpha=self.focal_alpha, gamma=self.focal_gamma
            )
            losses.append(loss / max(1, int(foreground.sum())))
        return sum(losses) / len(targets)
