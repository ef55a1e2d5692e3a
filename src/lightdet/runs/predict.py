"""A prediction run: a checkpoint's detector over images, drawn and written as JSON.

Inputs are read as the data readers read them (EXIF orientation, grayscale, RGBA, 16-bit,
CMYK; :mod:`lightdet.data.images`); an unreadable file is named and counted, and the rest go
on. Boxes are in each upright image's pixels. Nothing is ever overwritten: the output folder is
new, empty or lightdet's, and a drawn image whose name exists already gets a suffix.
"""

from __future__ import annotations

import glob
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from tqdm import tqdm

from lightdet import outputs
from lightdet.data.classes import category_ids
from lightdet.data.inputs import IMAGE_SUFFIXES
from lightdet.detector import Detections, Detector
from lightdet.evaluation.thresholds import default_threshold
from lightdet.guard import secure_config
from lightdet.viz import draw_boxes

log = logging.getLogger(__name__)


class NonFiniteOutputError(RuntimeError, CompactHydraException):
    """Nothing was detected and the model's outputs held NaN/inf values in every image: a
    broken model, not an empty scene. Printed by Hydra as its message alone."""


def run_prediction(cfg: DictConfig) -> dict:
    """Predict on ``cfg.input`` with ``cfg.ckpt_path``; returns the summary (counts, threshold,
    output folder) that it also prints."""
    secure_config(cfg)
    inputs = expand_input(str(cfg.input))
    detector = Detector.from_checkpoint(cfg.ckpt_path, device=cfg.get("device"))
    threshold, source = score_threshold(cfg)
    out = outputs.claim(Path(cfg.output_dir), "output_dir", "run")
    classes = OmegaConf.to_container(cfg.classes) if cfg.get("classes") is not None else None
    found = _predict(detector, inputs, out, cfg, threshold, classes)
    entries = [_entry(d, detector) for d in found]
    (out / "predictions.json").write_text(
        json.dumps(
            {
                "checkpoint": str(cfg.ckpt_path),
                "score_threshold": threshold,
                "score_threshold_source": source,
                "class_names": detector.class_names,
                "images": entries,
            },
            indent=1,
        )
        + "\n"
    )
    summary = _summary(found, threshold, source, out)
    print(summary["text"], flush=True)
    _check_finite(found, summary)
    return {k: v for k, v in summary.items() if k != "text"}


def _check_finite(found: list[Detections], summary: dict) -> None:
    """Non-finite outputs are said (the summary counts them); when nothing was detected and
    every image's outputs held them, the command fails: "0 detections" would read as an empty
    scene."""
    read = [d for d in found if d.error is None]
    dropped = summary["dropped_nonfinite"]
    if dropped:
        log.warning("predict: %d detections with NaN/inf boxes or scores dropped", dropped)
    if read and summary["detections"] == 0 and all(d.dropped for d in read):
        raise NonFiniteOutputError(
            f"predict: no detection left: the model returned NaN/inf boxes or scores in every "
            f"image ({dropped} dropped); check the checkpoint (its weights may hold NaN/inf)"
        )


def expand_input(text: str) -> list[str]:
    """A file, a folder or a glob, as paths (a folder is expanded by the detector, sorted).

    Raises:
        FileNotFoundError: nothing there, naming what was given.
    """
    if Path(text).exists():
        return [text]
    if any(c in text for c in "*?["):
        # a pattern over a large tree can walk for minutes: the paths looked at, as they come
        walked = tqdm(
            glob.iglob(text, recursive=True),
            desc=f"finding images ({text})",
            unit=" paths",
            mininterval=1.0,
            leave=False,
        )
        found = (Path(p) for p in walked)
        matches = sorted(
            str(p) for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if matches:
            return matches
        raise FileNotFoundError(
            f"input={text}: the pattern matches no image ({', '.join(IMAGE_SUFFIXES)})"
        )
    raise FileNotFoundError(f"input={text}: no such image file or folder")


def score_threshold(cfg: DictConfig) -> tuple[float, str]:
    """``score_thresh`` when set; else the checkpoint's default (:func:`default_threshold`:
    the F1-optimal one kept beside it, else the stated default), as ``Detector.predict``
    takes it. Returns it and where it came from."""
    if cfg.get("score_thresh") is not None:
        return float(cfg.score_thresh), "score_thresh"
    return default_threshold(cfg.ckpt_path)


def _predict(
    detector: Detector, inputs: list[str], out: Path, cfg: DictConfig, threshold: float, classes
) -> list[Detections]:
    from lightdet.data.inputs import image_inputs

    items = image_inputs(inputs)  # paths only: nothing is read yet
    stream = detector.stream(
        items,
        score_thresh=threshold,
        classes=classes,
        batch_size=int(cfg.batch_size),
        max_detections=cfg.max_detections,
        errors="skip",
    )
    found, drawn_dir = [], out / "images"
    for detections, image in tqdm(stream, total=len(items), desc="predict", unit="img"):
        found.append(detections)
        if detections.error is not None:
            tqdm.write(f"skipped {detections.error}")
        elif cfg.get("draw", True) and image is not None:
            drawn_dir.mkdir(exist_ok=True)
            _draw(detector, detections, image, drawn_dir)
    return found


def _draw(detector: Detector, detections: Detections, image, folder: Path) -> Path:
    pred = {"boxes": detections.boxes, "labels": detections.labels, "scores": detections.scores}
    pixels = draw_boxes(
        image, detector.class_names, prediction=pred, score_threshold=0.0, min_side=0
    )
    stem = Path(detections.source).stem if detections.source else "image"
    path, n = folder / f"{stem}.jpg", 0
    while path.exists():  # two inputs with one stem, or an earlier run's file: never replaced
        n += 1
        path = folder / f"{stem}_{n}.jpg"
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, quality=92)
    return path


def _entry(found: Detections, detector: Detector) -> dict:
    if found.error is not None:
        return {"file": found.source, "error": found.error}
    ids = category_ids(detector.class_names, detector.category_map)
    height, width = found.height, found.width
    detections = [{**d, "category_id": ids.get(d["label"], d["label"])} for d in found.to_list()]
    entry = {"file": found.source, "width": width, "height": height, "detections": detections}
    if found.dropped:  # only where there were some: files of sound models are as they were
        entry["dropped_nonfinite"] = found.dropped
    return entry


def _summary(found: list[Detections], threshold: float, source: str, out: Path) -> dict:
    errors = [d for d in found if d.error is not None]
    per_class = Counter(name for d in found for name in d.names)
    boxes = sum(per_class.values())
    lines = [
        f"predicted {len(found) - len(errors)} images: {boxes} detections at score >= "
        f"{threshold:.3f} ({source})"
    ]
    if per_class:
        lines.append("  " + ", ".join(f"{n} {c}" for n, c in sorted(per_class.items())))
    dropped = sum(d.dropped for d in found)
    if dropped:
        images = sum(bool(d.dropped) for d in found)
        lines.append(
            f"non-finite: {dropped} detections with NaN/inf boxes or scores dropped, in {images} "
            "images: the model's outputs are not all finite"
        )
    if errors:
        lines.append(f"{len(errors)} unreadable, skipped:")
        lines += [f"  {d.error}" for d in errors]
    lines.append(
        f"written to {out}: predictions.json" + (", images/" if (out / "images").is_dir() else "")
    )
    return {
        "images": len(found) - len(errors),
        "detections": boxes,
        "per_class": dict(per_class),
        "unreadable": [d.source for d in errors],
        "dropped_nonfinite": dropped,
        "score_threshold": threshold,
        "output_dir": str(out),
        "text": "\n".join(lines),
    }
