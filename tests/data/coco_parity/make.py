"""Writes the COCO parity set (``ground_truth.json``, ``detections.json``) next to this file.

    python tests/data/coco_parity/make.py

Seeded, so the files are the same each time; they are committed, and the parity test reads
them. Every case an evaluator can get wrong against pycocotools is present: crowd boxes (some
matched by detections), images without ground truth or without detections or both, more than
100 detections on an image (the maxDets cut), tied scores, a class with detections but no ground
truth and one with ground truth but no detections, boxes whose area sits exactly on COCO's
small/medium/large borders (32², 96²), and detections shifted, relabelled and duplicated.
Coordinates lie on a 1/16 px grid (exact in float32, as a detector's boxes are).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_IMAGES, N_CLASSES = 48, 4
DETECTED = (1, 2, 4)  # class 4: detections only; class 3: ground truth only


def _q(value: float) -> float:
    return round(float(value) * 16) / 16


def _box(rng: np.random.Generator, side: float) -> list[float]:
    w, h = side * rng.uniform(0.7, 1.3), side * rng.uniform(0.7, 1.3)
    return [_q(rng.uniform(0, 640 - w)), _q(rng.uniform(0, 480 - h)), _q(w), _q(h)]


def make(seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []

    def detect(image_id: int, cat: int, bbox: list[float], score: float) -> None:
        detections.append({"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score})

    for image_id in range(1, N_IMAGES + 1):
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 640, "height": 480})
        kind = image_id % 6  # 0: no ground truth; 1: no detections; 2: > 100 detections
        boxes = []
        for _ in range(0 if kind == 0 else int(rng.integers(1, 7))):
            bbox = _box(rng, float(rng.choice([10, 40, 150])))
            cat = int(rng.integers(1, N_CLASSES))  # 1..3
            crowd = int(rng.random() < 0.15)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": crowd,
                }
            )
            boxes.append((bbox, cat))
        if image_id in (7, 13):  # areas exactly on the borders: 32 x 32 and 96 x 96
            for side in (32.0, 96.0):
                bbox = [_q(rng.uniform(0, 400)), _q(rng.uniform(0, 300)), side, side]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": bbox,
                        "area": side * side,
                        "iscrowd": 0,
                    }
                )
                boxes.append((bbox, 1))
        if kind == 1 or image_id == 12:  # image 12: neither ground truth nor detections
            continue
        for bbox, cat in boxes:
            if cat == 3:
                continue  # never detected
            for _ in range(int(rng.integers(1, 3))):  # a hit, sometimes a duplicate
                x, y, w, h = bbox
                jitter = rng.normal(0, 0.12, 4) * [w, h, w, h]
                label = cat if rng.random() < 0.8 else int(rng.choice(DETECTED))
                shifted = [
                    _q(x + jitter[0]),
                    _q(y + jitter[1]),
                    _q(max(1, w + jitter[2])),
                    _q(max(1, h + jitter[3])),
                ]
                detect(image_id, label, shifted, round(float(rng.random()), 2))  # ties
        for _ in range(130 if kind == 2 else int(rng.integers(0, 12))):  # background
            detect(
                image_id,
                int(rng.choice(DETECTED)),
                _box(rng, float(rng.uniform(6, 200))),
                round(float(rng.random()), 2),
            )
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, N_CLASSES + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


if __name__ == "__main__":
    ground_truth, detections = make()
    (HERE / "ground_truth.json").write_text(json.dumps(ground_truth, indent=0) + "\n")
    (HERE / "detections.json").write_text(json.dumps(detections, indent=0) + "\n")
    print(f"{len(ground_truth['annotations'])} boxes, {len(detections)} detections")
