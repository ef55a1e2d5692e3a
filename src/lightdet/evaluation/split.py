"""A split's ground truth and detections as COCO's columns, the form lightdet scores.

One array per field over the whole split (image and category ids, xywh boxes, areas, crowd
flags, scores), not a dict per box: 5,000 images' 500,000 detections are a few arrays. The
JSON files of a report are built from them when written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class CocoSplit:
    """A split's ground truth and detections as COCO columns (what its JSON files hold).

    Attributes:
        images: per image ``{"id", "file_name", "width", "height"}``.
        categories: category id -> name, every class of the model.
        gt_image_ids, gt_category_ids: int64 ``[G]``.
        gt_boxes: float64 ``[G, 4]`` xywh; gt_areas: float64 ``[G]``; iscrowd: bool ``[G]``
            (VOC's ``difficult`` when the split is VOC's).
        dt_image_ids, dt_category_ids: int64 ``[D]``; dt_boxes: float64 ``[D, 4]`` xywh;
        scores: float64 ``[D]``.
    """

    images: list[dict]
    categories: dict[int, str]
    gt_image_ids: np.ndarray
    gt_category_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_areas: np.ndarray
    iscrowd: np.ndarray
    dt_image_ids: np.ndarray
    dt_category_ids: np.ndarray
    dt_boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def of(
        cls,
        images: Sequence[Mapping],
        targets: Sequence[Mapping],
        preds: Sequence[Mapping],
        categories: Mapping[int, str],
    ) -> CocoSplit:
        """From per-image arrays.

        Args:
            images: per image ``{"id", "file_name", "width", "height"}``.
            targets: per image ``{"boxes": [N, 4] xyxy, "category_ids": [N], "iscrowd": [N]}``.
            preds: per image ``{"boxes": [N, 4] xyxy, "scores": [N], "category_ids": [N]}``.
            categories: category id -> name, every class of the model.
        """
        ids = [int(i["id"]) for i in images]
        gt_boxes = _boxes([t["boxes"] for t in targets])  # [G, 4] float32 xywh
        return cls(
            images=[dict(i) for i in images],
            categories={int(c): str(n) for c, n in categories.items()},
            gt_image_ids=_repeat(ids, [len(t["category_ids"]) for t in targets]),
            gt_category_ids=_column([t["category_ids"] for t in targets], np.int64),
            gt_boxes=gt_boxes.astype(np.float64),
            gt_areas=(gt_boxes[:, 2] * gt_boxes[:, 3]).astype(np.float64),  # float32 products
            iscrowd=_column([t["iscrowd"] for t in targets], bool),
            dt_image_ids=_repeat(ids, [len(p["scores"]) for p in preds]),
            dt_category_ids=_column([p["category_ids"] for p in preds], np.int64),
            dt_boxes=_boxes([p["boxes"] for p in preds]).astype(np.float64),
            scores=_column([p["scores"] for p in preds], np.float64),
        )

    @classmethod
    def from_columns(
        cls,
        images: Sequence[Mapping],
        dt: Mapping[str, np.ndarray],
        gt: Mapping[str, np.ndarray],
        categories: Mapping[int, str],
        to_category: np.ndarray,
    ) -> CocoSplit:
        """From a split's columns (:func:`lightdet.evaluation.voc.columns`: ``image`` positions,
        ``labels``, xyxy ``boxes`` holding float32 values; ``scores``/``iscrowd``), labels mapped
        to category ids by ``to_category`` (a lookup array); the same split as :meth:`of`."""
        ids = np.asarray([int(i["id"]) for i in images], np.int64)
        gt_boxes = _boxes([gt["boxes"]])  # [G, 4] float32 xywh
        return cls(
            images=[dict(i) for i in images],
            categories={int(c): str(n) for c, n in categories.items()},
            gt_image_ids=ids[gt["image"]],
            gt_category_ids=to_category[gt["labels"]],
            gt_boxes=gt_boxes.astype(np.float64),
            gt_areas=(gt_boxes[:, 2] * gt_boxes[:, 3]).astype(np.float64),
            iscrowd=gt["iscrowd"].astype(bool),
            dt_image_ids=ids[dt["image"]],
            dt_category_ids=to_category[dt["labels"]],
            dt_boxes=_boxes([dt["boxes"]]).astype(np.float64),
            scores=dt["scores"].astype(np.float64),
        )

    @classmethod
    def from_json(cls, ground_truth: Mapping, detections: Sequence[Mapping]) -> CocoSplit:
        """From a COCO ground-truth dict and COCO results (their areas and boxes as given)."""
        anns = ground_truth["annotations"]
        box = lambda rows: np.asarray([r["bbox"] for r in rows], np.float64).reshape(-1, 4)  # noqa: E731
        return cls(
            images=[dict(i) for i in ground_truth["images"]],
            categories={
                int(c["id"]): str(c.get("name", c["id"])) for c in ground_truth["categories"]
            },
            gt_image_ids=np.asarray([a["image_id"] for a in anns], np.int64),
            gt_category_ids=np.asarray([a["category_id"] for a in anns], np.int64),
            gt_boxes=box(anns),
            gt_areas=np.asarray([a["area"] for a in anns], np.float64),
            iscrowd=np.asarray([bool(a.get("iscrowd", 0)) for a in anns], bool),
            dt_image_ids=np.asarray([d["image_id"] for d in detections], np.int64),
            dt_category_ids=np.asarray([d["category_id"] for d in detections], np.int64),
            dt_boxes=box(detections),
            scores=np.asarray([d["score"] for d in detections], np.float64),
        )

    def ground_truth_json(self) -> dict:
        """The COCO ground-truth dict (``ground_truth.json``); annotation ids 1..G."""
        columns = zip(
            self.gt_image_ids.tolist(),
            self.gt_category_ids.tolist(),
            self.gt_boxes.tolist(),
            self.gt_areas.tolist(),
            self.iscrowd.tolist(),
        )
        annotations = [
            {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": int(z)}
            for n, (i, c, b, a, z) in enumerate(columns, start=1)
        ]
        return {
            "info": {"description": "lightdet evaluation ground truth (box areas)"},
            "images": [dict(i) for i in self.images],
            "annotations": annotations,
            "categories": [{"id": c, "name": n} for c, n in self.categories.items()],
        }

    def detections_json(self) -> list[dict]:
        """COCO results (``detections.json``): ``{"image_id", "category_id", "bbox", "score"}``
        per detection."""
        columns = zip(
            self.dt_image_ids.tolist(),
            self.dt_category_ids.tolist(),
            self.dt_boxes.tolist(),
            self.scores.tolist(),
        )
        return [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in columns]

    def detection_array(self) -> np.ndarray:
        """``[D, 7]`` float64 rows ``(image_id, x, y, w, h, score, category_id)``: COCO's
        ``loadRes`` array."""
        return np.column_stack(
            [self.dt_image_ids, self.dt_boxes, self.scores, self.dt_category_ids]
        ).astype(np.float64)


def _column(parts: Sequence, dtype) -> np.ndarray:
    arrays = [np.asarray(p).reshape(-1) for p in parts]
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)


def _repeat(ids: Sequence[int], counts: Sequence[int]) -> np.ndarray:
    if not counts:  # no rows given (only ground truth, or only detections)
        return np.zeros(0, np.int64)
    return np.repeat(np.asarray(ids, np.int64), np.asarray(counts, np.int64))


def _boxes(parts: Sequence) -> np.ndarray:
    """xywh in float32, the detectors' precision: the numbers training's validation has always
    scored (xyxy float32 corners, widths as float32 differences)."""
    arrays = [np.asarray(p, np.float32).reshape(-1, 4) for p in parts]
    xyxy = np.concatenate(arrays) if arrays else np.zeros((0, 4), np.float32)  # [N, 4]
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # [N, 4] xywh


def xyxy(xywh: np.ndarray) -> np.ndarray:
    """COCO's ``[N, 4]`` x, y, w, h boxes as corners (float64)."""
    boxes = np.asarray(xywh, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
