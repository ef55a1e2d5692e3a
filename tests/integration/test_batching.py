"""Validation metrics do not depend on the batch size, on data of mixed image sizes."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from lightdet.data.records import DetectionRecord
from lightdet.data.sources import VOCSource
from lightdet.data.voc import write_voc_annotation
from lightdet.lightning.datamodule import DetectionDataModule
from lightdet.lightning.module import DetectionModule
from lightdet.models.retinanet import build_retinanet

CLASSES = ["circle", "square"]
SIZES = [(128, 128), (96, 160), (160, 96)]  # (height, width): three sizes, interleaved


def _mixed_voc(root):
    rng = np.random.default_rng(0)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(12):
        h, w = SIZES[i % 3]
        pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        boxes = []
        for k in range(2):
            x, y = rng.integers(0, w - 40), rng.integers(0, h - 40)
            pixels[y : y + 32, x : x + 32] = (220, 180, 40) if k else (40, 200, 220)
            boxes.append([x, y, x + 32, y + 32])
        name = f"{i:04d}"
        Image.fromarray(pixels).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        record = DetectionRecord(
            root / "JPEGImages" / f"{name}.jpg",
            i + 1,
            w,
            h,
            np.asarray(boxes, np.float32),
            np.asarray([1, 2], np.int64),
            name=name,
        )
        write_voc_annotation(root / "Annotations" / f"{name}.xml", record, CLASSES)
        names.append(name)
    (root / "ImageSets/Main/val.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.mark.slow
def test_val_map_at_batch_4_equals_batch_1_on_mixed_sizes(tmp_path):
    root = _mixed_voc(tmp_path / "VOC")
    torch.manual_seed(0)
    net = build_retinanet(
        num_classes=3,
        backbone="resnet18",
        fpn_channels=64,
        head_norm="group",
        min_size=128,
        max_size=192,
        score_thresh=0.0,
    )
    results = {}
    for batch_size in (4, 1):
        source = VOCSource(root, class_names=CLASSES, train=None, val="val")
        dm = DetectionDataModule(source, batch_size=batch_size, num_workers=0)
        module = DetectionModule(net, class_names=CLASSES)
        trainer = pl.Trainer(
            accelerator="cpu",
            precision="bf16-mixed",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        (metrics,) = trainer.validate(module, datamodule=dm)
        results[batch_size] = metrics
    assert results[1]["val/map_50"] > 0  # random weights, but something to compare
    for key in ("val/map", "val/map_50", "val/map_75", "val/mar_100"):
        assert results[4][key] == pytest.approx(results[1][key], abs=1e-6), key
