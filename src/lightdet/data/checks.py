"""Index-time validation of detection records (``docs/bad_inputs.md``).

Every split is checked once, when the datamodule indexes it, so nothing bad is found mid-epoch.
Outcomes follow the catalogue: **E** raise an :class:`AnnotationError` naming file and field;
**S** skip the box or image and count the reason; **F** fix and count. ``strict`` turns S and F
into E. Counts are logged at the end of indexing and kept on the datamodule (``skipped``,
``fixed``, ``noted``) for the ClearML dataset summary.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from lightdet.data.images import DEFAULT_MAX_PIXELS, ImageProblem, image_size, load_rgb
from lightdet.data.records import AnnotationError, DetectionRecord


@dataclass(frozen=True)
class DataPolicy:
    """What to do with bad input (``data.policy.*``).

    Args:
        strict: every skip or fix becomes an error naming the file and field.
        max_skip_fraction: more skipped images (or boxes) than this fraction of a split is an error.
        unknown_classes: ``error`` (default) or ``skip`` objects whose class is not in the list.
        size_mismatch: ``error`` (default) when the annotated width/height differ from the
            decoded (EXIF-upright) image, or ``fix`` to use the image's size.
        min_visibility: a box clipped to the image keeping less than this fraction of its area
            is skipped (the rest are clipped and counted).
        train_difficult: train on VOC ``difficult`` / COCO ``iscrowd`` boxes (evaluation always
            ignores them).
        keep_empty: keep images without objects as negatives (counted); False skips them.
        decode_images: fully decode every image at index time (catches truncated files);
            False reads headers only.
        max_image_pixels: larger images are skipped with a message naming the limit.
        cache_index: keep each split's checked index and use it again while its files are
            unchanged (:mod:`lightdet.data.index_cache`).
    """

    strict: bool = False
    max_skip_fraction: float = 0.1
    unknown_classes: Literal["error", "skip"] = "error"
    size_mismatch: Literal["error", "fix"] = "error"
    min_visibility: float = 0.3
    train_difficult: bool = True
    keep_empty: bool = True
    decode_images: bool = True
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    cache_index: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (
            ("unknown_classes", ("error", "skip")),
            ("size_mismatch", ("error", "fix")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"data.policy.{name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )


MESSAGES = 20  # messages kept per reason (which files), beyond the counts


class DataChecker:
    """Counts skips, fixes and notes for one split; raises instead in strict mode."""

    def __init__(self, policy: DataPolicy | None = None, split: str = "") -> None:
        self.policy = policy or DataPolicy()
        self.split = split
        self.skipped: Counter[str] = Counter()
        self.fixed: Counter[str] = Counter()
        self.noted: Counter[str] = Counter()  # kept as they are, but worth knowing
        self.examples: dict[str, str] = {}  # the first message per reason, for the report
        self.messages: dict[str, list[str]] = {}  # the first MESSAGES per reason: which files

    def skip(self, reason: str, message: str) -> None:
        self._count(self.skipped, reason, message)

    def fix(self, reason: str, message: str) -> None:
        self._count(self.fixed, reason, message)

    def note(self, reason: str, message: str = "", count: int = 1) -> None:
        self.noted[reason] += count
        self.examples.setdefault(reason, message)

    def _count(self, counter: Counter, reason: str, message: str) -> None:
        if self.policy.strict:
            raise AnnotationError(f"{message} (data.policy.strict=true)")
        counter[reason] += 1
        self.examples.setdefault(reason, message)
        kept = self.messages.setdefault(reason, [])
        if len(kept) < MESSAGES:
            kept.append(message)


def unknown_class(checker: DataChecker | None, message: str) -> None:
    """An object whose class is not in the list (``data.policy.unknown_classes``): an error
    naming it, or (``skip``) skipped and counted. Without a checker, an error. Every reader's
    rule, here once."""
    if checker is None or checker.policy.unknown_classes == "error":
        raise AnnotationError(f"{message} (data.policy.unknown_classes=skip skips it)")
    checker.skip("unknown_class", message)


def check_records(records: list[DetectionRecord], checker: DataChecker) -> list[DetectionRecord]:
    """Validate a split: images first (in threads), then every box; returns the usable records.

    Raises:
        AnnotationError: on an E row, on any S/F row in strict mode, or when more than
            ``max_skip_fraction`` of the images or boxes were skipped.
    """
    policy = checker.policy
    probes = _probe_images(records, checker)
    kept: list[DetectionRecord] = []
    skipped_boxes = 0
    for record, probe in zip(records, probes):  # in file order: strict stops at the first
        if isinstance(probe, ImageProblem):
            checker.skip(probe.reason, f"{record.source}: {probe}")
            continue
        record = _check_size(record, probe, checker)
        record, dropped = _check_boxes(record, checker)
        skipped_boxes += dropped
        if len(record.boxes) == 0:
            if not policy.keep_empty:
                checker.skip("image_without_objects", f"{record.source}: no objects")
                continue
            checker.note("image_without_objects", f"{record.source}: no objects (kept)")
        kept.append(record)
    _check_fraction(len(records) - len(kept), len(records), "images", checker)
    total_boxes = sum(len(r.boxes) for r in kept) + skipped_boxes
    _check_fraction(skipped_boxes, total_boxes, "boxes", checker)
    return kept


def _probe_images(records: list[DetectionRecord], checker: DataChecker) -> list:
    """Per record, the upright ``(width, height)`` or the :class:`ImageProblem`; decoding runs
    in a thread pool (PIL releases the GIL while decoding), with a progress bar on large splits."""
    policy = checker.policy

    def probe(record: DetectionRecord):
        try:
            if policy.decode_images:
                pixels = load_rgb(record.image_path, policy.max_image_pixels)
                return pixels.shape[1], pixels.shape[0]
            return image_size(record.image_path, policy.max_image_pixels)
        except ImageProblem as problem:
            return problem

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(probe, records)
        bar = tqdm(
            results,
            total=len(records),
            desc=f"checking {checker.split} images",
            disable=len(records) < 500,
            leave=False,
        )
        return list(bar)


def _check_size(record: DetectionRecord, size: tuple[int, int], checker: DataChecker):
    if (record.width, record.height) == size:
        return record
    message = (
        f"{record.source}: size: annotated {record.width}x{record.height}, but the image "
        f"{record.image_path.name} is {size[0]}x{size[1]} (after EXIF orientation)"
    )
    if checker.policy.size_mismatch == "error":
        raise AnnotationError(f"{message}; set data.policy.size_mismatch=fix to use the image's")
    checker.fix("size_mismatch", message)
    return replace(record, width=size[0], height=size[1])


def _check_boxes(record: DetectionRecord, checker: DataChecker) -> tuple[DetectionRecord, int]:
    """Per box: NaN is an error; degenerate or outside boxes are skipped; boxes partly outside
    are clipped (or skipped when too little remains); difficult boxes follow the policy."""
    keep = np.ones(len(record.boxes), dtype=bool)
    boxes = record.boxes.copy()  # [N, 4]
    for i, (box, ref) in enumerate(zip(record.boxes, record.box_refs)):
        where = f"{record.source}: {ref}"
        if not np.isfinite(box).all():
            raise AnnotationError(f"{where}: non-finite coordinate {box.tolist()}")
        if record.labels[i] < 1:  # 0 is background: torchvision detectors would ignore it silently
            raise AnnotationError(f"{where}: label {record.labels[i]} < 1 (internal invariant)")
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 <= x1 or y2 <= y1:
            axis = "xmax" if x2 <= x1 else "ymax"
            low, high = (x1, x2) if x2 <= x1 else (y1, y2)
            checker.skip("degenerate_box", f"{where}: {axis} ({high:g}) <= {axis[0]}min ({low:g})")
            keep[i] = False
            continue
        if not (box[2] - box[0]) * (box[3] - box[1]) > 0:  # float32, as models and metrics
            # compute it: a 1e-30 px box passes the comparisons, and its area is 0
            checker.skip("degenerate_box", f"{where}: its area is 0 in float32 {box.tolist()}")
            keep[i] = False
            continue
        clipped = np.clip(box, 0, [record.width, record.height] * 2)  # [4]
        area = (x2 - x1) * (y2 - y1)
        inside = max(clipped[2] - clipped[0], 0) * max(clipped[3] - clipped[1], 0)
        if inside <= 0:
            checker.skip("box_outside_image", f"{where}: entirely outside the image")
            keep[i] = False
        elif inside < checker.policy.min_visibility * area:
            checker.skip("box_mostly_outside", f"{where}: {inside / area:.0%} inside the image")
            keep[i] = False
        elif inside < area:
            checker.fix("box_clipped", f"{where}: clipped to the image")
            boxes[i] = clipped
        if keep[i] and record.iscrowd[i]:
            checker.note("difficult_box", f"{where}: difficult/iscrowd")
            if not checker.policy.train_difficult and checker.split == "train":
                keep[i] = False
    refs = [r for r, k in zip(record.box_refs, keep) if k]
    cleaned = replace(
        record,
        boxes=boxes[keep],
        labels=record.labels[keep],
        iscrowd=record.iscrowd[keep],
        box_refs=refs,
    )
    return cleaned, int((~keep).sum())


def _check_fraction(skipped: int, total: int, what: str, checker: DataChecker) -> None:
    limit = checker.policy.max_skip_fraction
    if total and skipped / total > limit:
        reasons = ", ".join(f"{k}: {v}" for k, v in checker.skipped.most_common())
        first = next(iter(checker.examples.values()), "")
        raise AnnotationError(
            f"{checker.split} split: {skipped} of {total} {what} skipped ({skipped / total:.0%}) "
            f"> data.policy.max_skip_fraction ({limit:g}); reasons {reasons}; first: {first}"
        )


def report(checkers: list[DataChecker]) -> str:
    """One line per split and outcome, for the log at the end of indexing."""
    lines = []
    for c in checkers:
        for title, counter in (("skipped", c.skipped), ("fixed", c.fixed), ("noted", c.noted)):
            if counter:
                parts = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
                lines.append(f"  {c.split}: {title}: {parts}")
    return "\n".join(lines) if lines else "  no problems found"
