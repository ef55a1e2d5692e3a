"""The INT8 half of ``make export PRECISION=int8``: the verified float ONNX file quantised,
calibrated on training images, and gated on the validation split's mAP.

The calibration images are the training split's (``quantize.calibration_split``), spread
evenly over it, ``quantize.calibration_images`` of them, each under the evaluation transform
(what the deployed file sees: no augmentation). The gate's images are the float file's
verification images, against the same PyTorch outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from lightdet.deploy.export import load_runner, write_metadata
from lightdet.deploy.gate import gate_lines, map_gate
from lightdet.deploy.quantize import QuantizationError, calibration_images, quantize_int8
from lightdet.deploy.verify import verify


def export_int8(
    cfg: DictConfig,
    net,
    datamodule,
    float_path: Path,
    metadata: dict[str, str],
    items: Callable[[str], dict],
    float_ms: float | None,
) -> dict:
    """Quantise ``float_path`` beside it (``<name>.int8.onnx``), check it, write the gate's
    verdict into its metadata; returns the report's ``int8`` section (also printed).

    Raises:
        SystemExit: the quantiser failed, or the calibration split has no image.
    """
    options = cfg.quantize
    split = str(options.calibration_split)
    try:
        images, count, total = calibration_images(
            datamodule, split, int(options.calibration_images)
        )
    except QuantizationError as err:
        raise SystemExit(f"export: {err}") from err
    target = float_path.with_name(f"{float_path.stem}.int8.onnx")
    print(f"INT8: calibrating on {count} of the {total} images of the {split} split", flush=True)
    try:
        info = quantize_int8(
            float_path, target, tqdm(images, desc="calibrate", unit="img", total=count)
        )
    except QuantizationError as err:
        raise SystemExit(f"export: {err}") from err
    checked = verify(net, load_runner(target), **items("verify int8"))
    gate = map_gate(checked.coco, float(options.max_map_drop))
    calibration = {"split": split, "images": info["calibration_images"], "of": total}
    _write_metadata(target, metadata, info, calibration, gate)
    int8_ms = float(np.median(checked.exported_ms)) if checked.exported_ms else None
    section = {
        "file": str(target),
        "size_mb": round(target.stat().st_size / 2**20, 2),
        "quantisation": info,
        "calibration": calibration,
        "gate": gate,
        "images": checked.images,
        "images_with_pytorch_detections": checked.same + checked.ties,
        "median_ms": {"onnx_float32": float_ms, "int8": int8_ms},
    }
    print("\n".join(_lines(section)), flush=True)
    return section


def _write_metadata(
    path: Path, metadata: dict[str, str], info: dict, calibration: dict, gate: dict
) -> None:
    """The float file's metadata, with what makes this one INT8 and the gate's verdict."""
    entries = {
        **metadata,
        "precision": "int8",
        "quantisation": f"{info['toolkit']}: {info['scheme']}; only "
        f"{', '.join(info['quantised_ops'])} "
        "nodes (the network); pre- and post-processing float32",
        "calibration": json.dumps(calibration),
        "map_gate": json.dumps(gate),
        "map_gate_passed": str(gate["passed"]).lower(),
    }
    write_metadata(path, entries)


def _lines(section: dict) -> list[str]:
    info, ms = section["quantisation"], section["median_ms"]
    lines = [
        f"INT8 file ({section['size_mb']} MB): {section['file']}",
        f"  {info['toolkit']}: {info['quantised_nodes']} network nodes quantised "
        f"({', '.join(info['quantised_ops'])}); calibrated on {section['calibration']['images']} "
        f"images of the {section['calibration']['split']} split",
        f"  {section['images_with_pytorch_detections']}/{section['images']} images with "
        "PyTorch's detections within the float file's tolerances (not required of INT8)",
    ]
    if ms["int8"] is not None and ms["onnx_float32"]:
        lines.append(
            "  median latency per image (batch 1, this CPU): ONNX float32 "
            f"{ms['onnx_float32']:.1f} "
            f"ms, INT8 {ms['int8']:.1f} ms ({ms['int8'] / ms['onnx_float32']:.2f}x)"
        )
    return lines + gate_lines(section["gate"], "INT8")
