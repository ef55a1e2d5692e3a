"""Detection confusion matrix at one IoU threshold, with a background row and column.

A torchmetrics ``Metric`` with a summed state, so under DDP every process's counts are added
together before anyone reads the matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchvision.ops import box_iou


class DetectionConfusionMatrix(Metric):
    """Counts ``[true class, predicted class]`` pairs over a validation set.

    Predictions scoring at least ``score_threshold`` are matched greedily (highest IoU first,
    regardless of class) to ground truth with IoU >= ``iou_threshold``. Index 0 is background:
    an unmatched ground-truth box counts in column 0 (missed), an unmatched prediction in row 0
    (false alarm). Ground truth marked ``iscrowd`` is ignored, and so are predictions matching it.

    Args:
        num_classes: K + 1 (background included).
        iou_threshold: IoU for a prediction to match a ground-truth box.
        score_threshold: predictions below this score are not counted.
        **kwargs: torchmetrics' ``Metric`` options (``sync_on_compute=False`` for counts that
            one process makes alone).
    """

    full_state_update = False

    def __init__(
        self, num_classes: int, iou_threshold: float = 0.5, score_threshold: float = 0.3, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self.score_threshold = score_threshold
        self.add_state(
            "matrix", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> None:
        for pred, target in zip(preds, targets):
            keep = pred["scores"] >= self.score_threshold
            self._update_image(pred["boxes"][keep], pred["labels"][keep], target)

    def _update_image(self, boxes: Tensor, labels: Tensor, target: dict[str, Tensor]) -> None:
        crowd = target.get("iscrowd", torch.zeros_like(target["labels"], dtype=torch.bool)).bool()
        gt_boxes, gt_labels = target["boxes"], target["labels"]
        gt_matched = torch.zeros(len(gt_labels), dtype=torch.bool, device=gt_labels.device)
        pred_matched = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
        if len(gt_labels) and len(labels):
            iou = box_iou(gt_boxes, boxes)  # [G, P]
            for flat in torch.argsort(iou.flatten(), descending=True).tolist():
                g, p = divmod(flat, len(labels))
                if iou[g, p] < self.iou_threshold:
                    break
                if gt_matched[g] or pred_matched[p]:
                    continue
                gt_matched[g] = pred_matched[p] = True
                if not crowd[g]:
                    self.matrix[gt_labels[g], labels[p]] += 1
        for g in torch.nonzero(~gt_matched & ~crowd).flatten().tolist():
            self.matrix[gt_labels[g], 0] += 1  # missed: predicted background
        for p in torch.nonzero(~pred_matched).flatten().tolist():
            self.matrix[0, labels[p]] += 1  # false alarm: true background

    def compute(self) -> Tensor:
        return self.matrix.clone()
