"""Checking an exported file against the PyTorch detector it came from.

Per image: the same number of detections, boxes within ``box_rtol`` (relative to the
coordinate, at least 1 px), scores within ``score_atol``, labels equal, after ordering both by
score. Over a split: the COCO numbers of both, from the same evaluation report code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from lightdet.deploy.export import Runner
from lightdet.evaluation.report import EvaluatedImage, build_report

BOX_RTOL, SCORE_ATOL = 1e-3, 1e-4
MAP_ATOL = 1e-3  # the exported file's val map and map_50 against PyTorch's


@dataclass
class Verification:
    """The outcome of a verification pass (see :func:`verify`)."""

    images: int = 0
    same: int = 0  # images whose detections agree within the tolerances
    ties: int = 0  # images that differ only among exactly tied scores (see :func:`compare`)
    failures: list[str] = field(default_factory=list)  # what differed, per failing image
    box_error: float = 0.0  # the largest relative box difference seen where counts agreed
    score_error: float = 0.0
    detections: int = 0  # PyTorch's, over all images
    pytorch_ms: list[float] = field(default_factory=list)
    exported_ms: list[float] = field(default_factory=list)
    coco: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (torch, file)

    @property
    def ok(self) -> bool:
        same_map = all(abs(a - b) <= MAP_ATOL for a, b in self.coco.values())
        return self.same + self.ties == self.images and same_map


# scores this close may change order between runtimes (each is within SCORE_ATOL of the
# reference): which of them a top-k or a score threshold keeps is arbitrary
NEAR_TIE = 2 * SCORE_ATOL


def compare(
    reference: Sequence[np.ndarray], exported: Sequence[np.ndarray]
) -> tuple[str, float, float]:
    """How two outputs ``(boxes, scores, labels)`` of one image agree.

    Each reference detection is matched to an exported one of the same label, score within
    ``SCORE_ATOL`` and box within ``BOX_RTOL`` (relative to the coordinate, at least 1 px).
    Returns ``(verdict, box error, score error)`` over the matched pairs; the verdict is ``""``
    when every detection is matched, ``"ties"`` when the unmatched ones all have a score tied
    with another detection of their own output (the runtimes' top-k break exact ties
    differently: an untrained detector scores identical background patches identically), and
    otherwise says what differs. Tied means within :data:`NEAR_TIE` of another detection's
    score, or of the other output's lowest one (its top-k cut kept one and dropped this one,
    scored just below it there).
    """
    (rb, rs, rl), (eb, es, el) = (tuple(np.asarray(a) for a in x) for x in (reference, exported))
    free = np.ones(len(es), bool)
    lost, box_error, score_error = [], 0.0, 0.0
    for i in np.argsort(-rs, kind="stable"):
        rel = (np.abs(eb - rb[i]) / np.maximum(np.abs(rb[i]), 1.0)).max(axis=1) if len(es) else es
        fits = free & (el == rl[i]) & (np.abs(es - rs[i]) <= SCORE_ATOL) & (rel <= BOX_RTOL)
        if not fits.any():
            lost.append(i)
            continue
        j = int(np.flatnonzero(fits)[np.argmin(rel[fits])])
        free[j] = False
        box_error = max(box_error, float(rel[j]))
        score_error = max(score_error, float(abs(es[j] - rs[i])))
    extra = np.flatnonzero(free)
    if not lost and not len(extra):
        return "", box_error, score_error
    if all(_tied(rs, i, es) for i in lost) and all(_tied(es, j, rs) for j in extra):
        return "ties", box_error, score_error
    return (
        f"{len(rs)} detections in PyTorch, {len(es)} exported; {len(lost)} PyTorch "
        f"detections without an exported match (labels, boxes within {BOX_RTOL:g} "
        f"relative, scores within {SCORE_ATOL:g})",
        box_error,
        score_error,
    )


def _tied(scores: np.ndarray, i: int, other: np.ndarray) -> bool:
    """Within :data:`NEAR_TIE` of another score of its own output, or of the lowest score the
    other output kept (its cut: it dropped this one just below it)."""
    near_another = int((np.abs(scores - scores[i]) <= NEAR_TIE).sum()) > 1
    return near_another or (len(other) > 0 and abs(scores[i] - other.min()) <= NEAR_TIE)


def verify(
    net: nn.Module,
    runner: Runner,
    items: Iterable[tuple[Tensor, Mapping, int, str]],
    class_names: Sequence[str],
    progress: Callable = iter,
    *,
    difficult: bool = False,
    cache: dict | None = None,
) -> Verification:
    """Run both on every ``(image, target, image id, name)``; compare per image and, where
    targets are given (not None), score both as the evaluation report does.

    ``cache``: PyTorch's outputs by image (id and name), filled on a first call and read on the next
    (a second file checked against the same model on the same images); its timings are the
    first call's."""
    result = Verification()
    evaluated: dict[str, list[EvaluatedImage]] = {"pytorch": [], "exported": []}
    cache = {} if cache is None else cache
    for image, target, image_id, name in progress(items):
        key = (image_id, name)
        if key not in cache:
            started = time.perf_counter()
            with torch.no_grad():
                out = net([image])[0]
            milliseconds = 1000 * (time.perf_counter() - started)
            outputs = tuple(out[k].numpy() for k in ("boxes", "scores", "labels"))
            cache[key] = (outputs, milliseconds)
        reference, milliseconds = cache[key]
        result.pytorch_ms.append(milliseconds)
        started = time.perf_counter()
        exported = runner(image.numpy())
        result.exported_ms.append(1000 * (time.perf_counter() - started))
        why, box, score = compare(reference, exported)
        result.images += 1
        result.detections += len(reference[1])
        if why == "ties":
            result.ties += 1
        elif why:
            result.failures.append(f"{name}: {why}")
        if why in ("", "ties"):
            result.same += why == ""
            result.box_error = max(result.box_error, box)
            result.score_error = max(result.score_error, score)
        if target is not None:
            for key, (b, s, lab) in (("pytorch", reference), ("exported", exported)):
                evaluated[key].append(
                    EvaluatedImage(
                        image_id,
                        name,
                        int(image.shape[2]),
                        int(image.shape[1]),
                        target,
                        {"boxes": b, "scores": s, "labels": lab},
                    )
                )
    if evaluated["pytorch"]:
        reports = {
            k: build_report(v, class_names, {}, "val", difficult=difficult)
            for k, v in evaluated.items()
        }
        for i, metric in ((0, "map"), (1, "map_50")):
            result.coco[metric] = (
                reports["pytorch"].coco.stats[i],
                reports["exported"].coco.stats[i],
            )
    return result


def dataset_items(dataset, count: int, blank: bool):
    """``(image, target, id, name)`` for the first ``count`` validation images, then (``blank``)
    a blank grey image, which has no target."""
    for i in range(count):
        image, target = dataset[i]
        record = dataset.records[i]
        keep = {k: target[k].numpy() for k in ("boxes", "labels", "iscrowd")}
        yield image, keep, record.image_id, record.image_path.name
    if blank:
        yield torch.full_like(dataset[0][0], 0.5), None, -1, "blank image"
