"""How well a detector's anchors cover a dataset's boxes, and anchors fitted to those boxes.

Boxes are taken as the detector sees them: each image and its boxes go through the detector's own
transform (its resize), and the anchors are the detector's own generator's on the features of
that input size. For each box the best anchor is the one of highest IoU (anchors at every
location, as the matcher sees them):

- **best possible recall (BPR)** at the matcher's foreground IoU: the share of boxes that have
  at least one anchor at or above it (torchvision's RetinaNet and Faster R-CNN also match each
  box to its best anchor below that IoU, "low-quality matches": such a box is learned from
  anchors that fit it poorly);
- per pyramid level (the level of each box's best anchor) and per box size.

Fitting (for generators of sizes x aspect ratios, torchvision's ``AnchorGenerator``): aspect
ratios by k-means on the boxes' log aspect ratio, and the sizes as the smallest-level size
times 2 per level (the pyramid's stride), scanned for the best BPR, then mean best IoU. Plain
k-means of the box shapes on 1 - IoU (YOLO's autoanchor) is reported too, as shapes to look at.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

SIZE_BINS = (
    ("small (< 32 px)", 0.0, 32.0),
    ("medium", 32.0, 96.0),
    ("large (> 96 px)", 96.0, math.inf),
)
LARGE_SHARE = 0.3  # boxes covering at least this share of their image get their own row


@dataclass
class Boxes:
    """Ground-truth boxes as the detector sees them, grouped by input size.

    Attributes:
        by_size: ``{(height, width) of the detector's input: [boxes xyxy [N, 4]]}``.
        shares: per box (in ``all()`` order), its area over its image's area.
    """

    by_size: dict[tuple[int, int], list[Tensor]] = field(default_factory=dict)
    shares: list[float] = field(default_factory=list)

    def all(self) -> Tensor:
        parts = [b for boxes in self.by_size.values() for b in boxes]
        return torch.cat(parts) if parts else torch.zeros(0, 4)


def model_boxes(
    net: nn.Module, records: Sequence, *, limit: int | None = None, seed: int = 0
) -> Boxes:
    """The records' boxes after the detector's transform (its resize), grouped by input size;
    at most ``limit`` images (a seeded sample) when given. Crowd/difficult boxes are left out."""
    chosen = list(records)
    if limit is not None and len(chosen) > limit:
        rng = np.random.default_rng(seed)
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), limit, replace=False))]
    was_training = net.training
    net.eval()
    out = Boxes()
    for record in chosen:
        keep = ~torch.as_tensor(np.asarray(record.iscrowd, bool)).reshape(-1)
        boxes = torch.as_tensor(np.asarray(record.boxes, np.float32)).reshape(-1, 4)[keep]
        if not len(boxes):
            continue
        image = torch.zeros(3, int(record.height), int(record.width))
        resized, target = net.transform.resize(image, {"boxes": boxes})
        size = tuple(resized.shape[-2:])
        out.by_size.setdefault(size, []).append(target["boxes"])
        out.shares.extend(_areas(target["boxes"]).div(size[0] * size[1]).tolist())
    net.train(was_training)
    return out


def _areas(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _features(net: nn.Module, size: tuple[int, int]):
    """The input batch (padded as the detector pads) and the backbone's feature maps."""
    from torchvision.models.detection.image_list import ImageList

    divisible = int(getattr(net.transform, "size_divisible", 32))
    padded = [int(math.ceil(s / divisible) * divisible) for s in size]
    images = ImageList(torch.zeros(1, 3, *padded), [tuple(size)])
    with torch.no_grad():
        features = net.backbone(images.tensors)
    return images, list(features.values()) if isinstance(features, dict) else [features]


def first_stride(net: nn.Module, size: tuple[int, int]) -> int:
    """The stride of the first feature level, in input pixels."""
    images, features = _features(net, size)
    return max(1, round(images.tensors.shape[-1] / features[0].shape[-1]))


def anchors_for(net: nn.Module, size: tuple[int, int]) -> tuple[Tensor, list[int]]:
    """The detector's anchors for one input size (after its batching pad): ``[A, 4]`` xyxy and
    the number of anchors on each feature level, in order."""
    generator = anchor_generator(net)
    images, features = _features(net, size)
    anchors = generator(images, features)[0]
    per_location = generator.num_anchors_per_location()
    per_level = [int(f.shape[-2] * f.shape[-1]) * int(n) for f, n in zip(features, per_location)]
    return anchors, per_level


def anchor_sides(net: nn.Module, image_size: tuple[int, int]) -> list[float]:
    """The sides (sqrt of the area) of the detector's anchors, in the pixels of an image of
    ``image_size`` (height, width) before the detector's resize; anchors cut by the border
    (clipped, so of other sizes) are left out. Empty for a detector without anchors."""
    try:
        generator = anchor_generator(net)
    except ValueError:
        return []
    del generator
    h, w = image_size
    was_training = net.training
    net.eval()
    resized, _ = net.transform.resize(torch.zeros(3, h, w), None)
    net.train(was_training)
    size = tuple(int(s) for s in resized.shape[-2:])
    anchors, _ = anchors_for(net, size)  # [A, 4] in the resized image
    inside = (anchors[:, :2] > 0).all(1) & (anchors[:, 2] < size[1]) & (anchors[:, 3] < size[0])
    sides = sorted(float(v) for v in _areas(anchors[inside]).sqrt() * (w / size[1]))  # [A']
    # one per size and scale (2^(1/3) apart): aspect ratios and rounded corners vary it a few %
    distinct: list[float] = []
    for side in sides:
        if not distinct or side > distinct[-1] * 1.05:
            distinct.append(round(side, 1))
    return distinct


def anchor_generator(net: nn.Module):
    """The detector's anchor generator (RetinaNet, FCOS, SSD: ``anchor_generator``; Faster
    R-CNN: its RPN's)."""
    for owner in (net, getattr(net, "rpn", None)):
        generator = getattr(owner, "anchor_generator", None)
        if generator is not None:
            return generator
    raise ValueError(f"{type(net).__name__} has no anchor generator")


def matcher_thresholds(net: nn.Module) -> tuple[float, float | None]:
    """``(foreground IoU, background IoU or None)`` of the matcher that assigns anchors to
    boxes (RetinaNet 0.5/0.4, Faster R-CNN's RPN 0.7/0.3, SSD 0.5); (0.5, None) when the
    detector has no IoU matcher (FCOS assigns by centre sampling: coverage is indicative)."""
    for owner in (net, getattr(net, "rpn", None)):
        matcher = getattr(owner, "proposal_matcher", None)
        if matcher is not None:
            high = float(getattr(matcher, "high_threshold", getattr(matcher, "threshold", 0.5)))
            low = getattr(matcher, "low_threshold", None)
            return high, (float(low) if low is not None and low != high else None)
    return 0.5, None


@dataclass
class Coverage:
    """Coverage of the boxes by a set of anchors.

    Attributes:
        threshold: the foreground IoU the BPR is computed at.
        best_iou: per box, the IoU of its best anchor.
        level: per box, the feature level of its best anchor.
        sizes: per box, sqrt(area) in the detector's input pixels.
        shares: per box, its area over its image's.
    """

    threshold: float
    best_iou: Tensor
    level: Tensor
    sizes: Tensor
    shares: Tensor

    @property
    def bpr(self) -> float:
        hits = (self.best_iou >= self.threshold).float()
        return float(hits.mean()) if len(hits) else 0.0

    @property
    def mean_iou(self) -> float:
        return float(self.best_iou.mean()) if len(self.best_iou) else 0.0

    def rows(self, levels: int, low: float | None = None) -> list[tuple]:
        """``(what, boxes, BPR, share with a best IoU >= low (or None), mean best IoU)``
        overall, per level, per size, and for boxes covering >= 30 % of their image."""
        every = torch.ones_like(self.best_iou, dtype=torch.bool)
        groups: list[tuple[str, Tensor]] = [("all boxes", every)]
        groups += [(f"level {i} (best anchor there)", self.level == i) for i in range(levels)]
        groups += [(name, (self.sizes >= lo) & (self.sizes < hi)) for name, lo, hi in SIZE_BINS]
        groups.append((f">= {LARGE_SHARE:.0%} of the image", self.shares >= LARGE_SHARE))
        out = []
        for name, mask in groups:
            ious, n = self.best_iou[mask], int(mask.sum())

            def share(at: float, ious=ious, n=n) -> float:
                return float((ious >= at).float().mean()) if n else math.nan

            out.append(
                (
                    name,
                    n,
                    share(self.threshold),
                    None if low is None else share(low),
                    float(ious.mean()) if n else math.nan,
                )
            )
        return out


def coverage(net: nn.Module, boxes: Boxes, threshold: float) -> Coverage:
    """Each box's best anchor (IoU and level) among the detector's anchors."""
    best, levels = [], []
    for size, groups in boxes.by_size.items():
        anchors, per_level = anchors_for(net, size)
        level_of = torch.repeat_interleave(torch.arange(len(per_level)), torch.tensor(per_level))
        for gt in groups:
            iou = box_iou(gt, anchors)  # [N, A]
            value, index = iou.max(dim=1)
            best.append(value)
            levels.append(level_of[index])
    all_boxes = boxes.all()
    return Coverage(
        threshold=threshold,
        best_iou=torch.cat(best) if best else torch.zeros(0),
        level=torch.cat(levels) if levels else torch.zeros(0, dtype=torch.long),
        sizes=_areas(all_boxes).sqrt(),
        shares=torch.tensor(boxes.shares),
    )


def _wh_iou(wh: Tensor, centers: Tensor) -> Tensor:
    """IoU of boxes and cluster shapes, all centred at one point: ``[N, K]``."""
    inter = torch.min(wh[:, None], centers[None]).prod(-1)
    return inter / (wh.prod(-1)[:, None] + centers.prod(-1)[None] - inter)


def kmeans_shapes(boxes: Tensor, k: int, *, seed: int = 0, iterations: int = 100) -> Tensor:
    """k-means of the boxes' (width, height) with 1 - IoU as the distance (YOLO's autoanchor):
    ``[k, 2]`` shapes, by area. Fewer boxes than ``k``: the boxes' own shapes."""
    wh = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1).clamp(min=1e-3)
    if len(wh) <= k:
        return wh[wh.prod(1).argsort()]
    generator = torch.Generator().manual_seed(seed)
    centers = wh[torch.randperm(len(wh), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assign = _wh_iou(wh, centers).argmax(1)
        updated = torch.stack(
            [
                wh[assign == j].median(0).values if (assign == j).any() else centers[j]
                for j in range(k)
            ]
        )
        if torch.allclose(updated, centers):
            break
        centers = updated
    return centers[centers.prod(1).argsort()]


def kmeans_ratios(boxes: Tensor, k: int, *, iterations: int = 100) -> list[float]:
    """``k`` aspect ratios (height / width, torchvision's convention) by 1-D k-means on the
    boxes' log aspect ratio, started at its quantiles; sorted, rounded to 2 decimals, distinct
    (clusters that coincide are replaced by ratios a spread of the data beyond the others)."""
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-3)
    x = (h / w).log()
    if len(x) == 0:
        return [1.0] * k
    centers = torch.quantile(x, torch.linspace(0, 1, k + 2)[1:-1])
    for _ in range(iterations):
        assign = (x[:, None] - centers[None]).abs().argmin(1)
        updated = torch.stack(
            [x[assign == j].mean() if (assign == j).any() else centers[j] for j in range(k)]
        )
        if torch.allclose(updated, centers):
            break
        centers = updated
    found = sorted({round(float(c.exp()), 2) for c in centers})
    # boxes of one shape (squares and circles: h/w exactly 1) leave clusters on top of each
    # other: spread the missing ones around the found ones, a spread of the data apart
    step = max(float(x.std()) if len(x) > 1 else 0.0, 0.2)
    while len(found) < k:
        low, high = math.log(found[0]) - step, math.log(found[-1]) + step
        found.append(round(math.exp(high if len(found) % 2 else low), 2))
        found = sorted(set(found))
    return found


@dataclass
class Fit:
    """Anchors fitted to the boxes: the settings, and their coverage."""

    settings: dict[str, list]
    coverage: Coverage


def fit_anchor_settings(
    build: Callable[[dict], nn.Module],
    boxes: Boxes,
    threshold: float,
    *,
    levels: int,
    ratios: int,
    default: dict[str, list],
    stride: int | None = None,
    steps_per_octave: int = 4,
) -> Fit:
    """Scan ``anchor_sizes`` (the first level's size x 2 per level; the first from 4 px to the
    largest box, in ``steps_per_octave`` steps per doubling, and between 1 and 8 times the
    first level's ``stride`` when given) with the default and the k-means aspect ratios; keep
    the best BPR, then mean best IoU.

    The stride bound keeps each level at objects of its own scale (torchvision's recipes put
    2-4 x the stride there): coverage alone would put large anchors on the finest level, where
    the grid is densest.

    Args:
        build: a detector for settings ``{"anchor_sizes": [...], "aspect_ratios": [...]}``.
        default: the model's own settings (a candidate too: the fit is never worse).
    """
    all_boxes = boxes.all()
    top = max(8.0, float(_areas(all_boxes).sqrt().max()) if len(all_boxes) else 512.0)
    if stride is not None:
        top = min(top, 8.0 * stride)
    count = max(1, int(math.ceil(math.log2(top / 4.0) * steps_per_octave)) + 1)
    firsts = sorted({max(1, round(4.0 * 2 ** (i / steps_per_octave))) for i in range(count)})
    if stride is not None:
        firsts = [f for f in firsts if f >= stride] or [stride]
    ratio_sets = [list(default["aspect_ratios"]), kmeans_ratios(all_boxes, ratios)]
    candidates = [dict(default)]
    candidates += [
        {"anchor_sizes": [first * 2**i for i in range(levels)], "aspect_ratios": r}
        for r in ratio_sets
        for first in firsts
    ]
    best: Fit | None = None
    for settings in candidates:
        found = coverage(build(settings), boxes, threshold)
        if best is None or (found.bpr, found.mean_iou) > (
            best.coverage.bpr,
            best.coverage.mean_iou,
        ):
            best = Fit(settings=settings, coverage=found)
    assert best is not None
    return best
