"""An export run: a checkpoint's detector written as ONNX or TorchScript, then verified.

The file is checked against the PyTorch detector (float32 both) on the validation split of
the configured data and on a blank image: detections per image within tolerances, and the same
COCO mAP. With ``precision=int8`` (ONNX) the checked float file is then quantised for CPUs
(:mod:`lightdet.deploy.quantize`, calibrated on training images) and the INT8 file passes the
mAP gate (:mod:`lightdet.deploy.gate`) on the same images. Anything that blocks the export or
fails a check ends the command with one line naming it and a non-zero exit status.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from lightdet import __version__, outputs
from lightdet.deploy.export import FORMATS, OPSET, ExportError, export_file, load_runner
from lightdet.deploy.verify import (
    BOX_RTOL,
    MAP_ATOL,
    SCORE_ATOL,
    Verification,
    dataset_items,
    verify,
)
from lightdet.guard import secure_config
from lightdet.models.restore import restore_net
from lightdet.runs.build import build_datamodule
from lightdet.runs.predict import score_threshold
from lightdet.runs.preflight import say_notes

_NEEDS = {"onnx": ("onnx", "onnxruntime"), "torchscript": ()}


def run_export(cfg: DictConfig) -> dict:
    """Export ``cfg.ckpt_path`` as ``cfg.format`` into the run folder and verify it; returns the
    report it also writes (``export_report.json``) and prints.

    Raises:
        SystemExit: one line naming what blocked the export or failed the verification.
    """
    secure_config(cfg)
    say_notes()  # which data it verifies on: the checkpoint's, or the command line's
    fmt = str(cfg.format)
    _check_format(fmt, str(cfg.precision))
    datamodule = build_datamodule(cfg)
    datamodule.setup("validate")
    trained = restore_net(cfg.ckpt_path, datamodule.class_names)
    net = trained.net.float().eval()  # float32 on the CPU: what a deployment runtime gets
    dataset = datamodule.datasets["val"]
    out = outputs.claim(Path(cfg.output_dir), "output_dir", "run")
    path = out / f"{Path(cfg.ckpt_path).stem}{FORMATS[fmt]}"
    threshold, source = score_threshold(cfg)
    metadata = _metadata(trained, net, cfg, threshold, source)
    try:
        export_file(net, fmt, path, dataset[0][0], metadata)
    except ExportError as err:
        raise SystemExit(f"export: {err}") from err
    limit = cfg.verify.get("max_images")
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    blank = bool(cfg.verify.get("blank_image", True))
    cache: dict = {}  # PyTorch's outputs: an INT8 file is checked against them too

    def items(desc: str) -> dict:
        """verify()'s images and options, with a progress bar named ``desc``."""
        return {
            "items": dataset_items(dataset, count, blank),
            "class_names": trained.class_names,
            "progress": lambda it: tqdm(it, desc=desc, unit="img", total=count + blank),
            "difficult": datamodule.difficult_boxes,
            "cache": cache,
        }

    checked = verify(net, load_runner(path), **items("verify"))
    report = _report(path, fmt, metadata, checked, _data_words(cfg))
    (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_text(report, checked), flush=True)
    if not checked.ok:
        raise SystemExit(
            f"export: {path.name} does not match PyTorch (see above; the file is "
            f"kept in {out} for inspection)"
        )
    if str(cfg.precision) == "int8":
        from lightdet.runs.export_int8 import export_int8

        report["int8"] = export_int8(
            cfg, net, datamodule, path, metadata, items, report["median_ms"]["exported"]
        )
        (out / "export_report.json").write_text(json.dumps(report, indent=2) + "\n")
        if not report["int8"]["gate"]["passed"]:
            gate = report["int8"]["gate"]
            raise SystemExit(
                f"export: {Path(report['int8']['file']).name} failed the mAP gate: val "
                f"{gate['metric']} {gate['pytorch']['map']:.4f} -> {gate['file']['map']:.4f} "
                f"({gate['change']['map']:+.4f}, max_map_drop={gate['max_map_drop']:g}); "
                f"the file is kept in {out} for inspection, marked failed in its metadata"
            )
    notes = [(fmt, report["coco"], path.name)]
    if "int8" in report:  # the INT8 file's change too, as its own format
        gate = report["int8"]["gate"]
        coco = {
            k: {"pytorch": gate["pytorch"][k], "exported": gate["file"][k]} for k in gate["file"]
        }
        notes.append((f"{fmt}_int8", coco, Path(report["int8"]["file"]).name))
    _note_on_model(cfg, notes)
    return report


def _note_on_model(cfg: DictConfig, notes: list[tuple[str, dict, str]]) -> None:
    """The export's mAP change on the ClearML model the checkpoint's training registered,
    where a server answers (the registry then says what exporting costs); said in one line.

    ``notes``: ``(format, {metric: {"pytorch", "exported"}}, file name)`` per file written."""
    from lightdet.guard.checkpoints import inspect_checkpoint

    task_id = inspect_checkpoint(cfg.ckpt_path).task_id
    last = Path(cfg.ckpt_path).with_name("last.ckpt")  # best-*.ckpt do not keep the task; the
    if not task_id and last.is_file():  # run's resumable state beside them does
        task_id = inspect_checkpoint(last).task_id
    notes = [n for n in notes if n[1]]
    if not task_id or not notes:
        return
    noted = None
    if not str(task_id).startswith("offline-"):
        from lightdet.tracking.clearml import note_export

        for fmt, coco, file_name in notes:
            noted = note_export(task_id, fmt, coco, file_name)
    print(
        noted
        or "the checkpoint's ClearML task is offline or its server does not answer: "
        "the mAP change is in export_report.json only",
        flush=True,
    )


def _data_words(cfg: DictConfig) -> str:
    """The data verified on, as the summary says it: the split, the source and its folder."""
    source = cfg.data.source
    where = source.get("root") or source.get("roots") or ""
    name = str(source.get("_target_", "?")).rsplit(".", 1)[-1]
    return f"the val split of {name} {where}".rstrip()


def _check_format(fmt: str, precision: str) -> None:
    if fmt not in FORMATS:
        raise SystemExit(f"export: format={fmt!r}: expected one of {', '.join(FORMATS)}")
    if precision == "int8" and fmt != "onnx":
        raise SystemExit(f"export: precision=int8 needs format=onnx (got format={fmt})")
    missing = [m for m in _NEEDS[fmt] if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f"export: format={fmt} needs {' and '.join(missing)}: pip install -e '.[export]'"
        )


def _metadata(trained, net, cfg: DictConfig, threshold: float, source: str) -> dict[str, str]:
    transform = getattr(net, "transform", None)
    resize = {k: getattr(transform, k, None) for k in ("min_size", "max_size", "fixed_size")}
    return {
        "producer": f"lightdet {__version__}",
        "model": type(net).__name__,
        "checkpoint": Path(cfg.ckpt_path).name,
        "class_names": json.dumps(trained.class_names),  # label i is class_names[i - 1]
        "input": "image: float32 [3, H, W], RGB, values in [0, 1], any H and W; batch of 1",
        "resize_inside": json.dumps(
            {k: v for k, v in resize.items() if v is not None}, default=list
        ),
        "outputs": "boxes float32 [N, 4] xyxy in input pixels; scores float32 [N]; "
        "labels int64 [N] in 1..K",
        "score_threshold": f"{threshold:.6g}",
        "score_threshold_source": source,
        "opset": str(OPSET) if cfg.format == "onnx" else "",
        "precision": "float32",
    }


def _report(path: Path, fmt: str, metadata: dict, checked: Verification, data: str) -> dict:
    median = lambda v: float(np.median(v)) if v else None  # noqa: E731
    return {
        "file": str(path),
        "format": fmt,
        "data": data,
        "size_mb": round(path.stat().st_size / 2**20, 2),
        "metadata": metadata,
        "runtime": _runtime(fmt),
        "images": checked.images,
        "images_matching": checked.same,
        "images_differing_in_ties_only": checked.ties,
        "failures": checked.failures[:20],
        "max_box_error_relative": checked.box_error,
        "box_tolerance": BOX_RTOL,
        "max_score_error": checked.score_error,
        "score_tolerance": SCORE_ATOL,
        "detections": checked.detections,
        "coco": {k: {"pytorch": a, "exported": b} for k, (a, b) in checked.coco.items()},
        "median_ms": {
            "pytorch": median(checked.pytorch_ms),
            "exported": median(checked.exported_ms),
        },
        "passed": checked.ok,
    }


def _runtime(fmt: str) -> str:
    if fmt == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"
    return f"torch {torch.__version__} (torch.jit.load, CPU, {platform.machine()})"


def _text(report: dict, checked: Verification) -> str:
    lines = [
        f"exported {report['metadata']['model']} as {report['format']} "
        f"({report['size_mb']} MB): {report['file']}",
        f"  input: {report['metadata']['input']}; resized inside: "
        f"{report['metadata']['resize_inside']}",
        f"  score threshold in metadata: {report['metadata']['score_threshold']} "
        f"({report['metadata']['score_threshold_source']})",
        f"verification, {report['runtime']} against PyTorch float32, "
        f"{checked.images} images ({checked.detections} detections) of {report['data']}:",
        f"  same detections on {checked.same}/{checked.images} images: boxes within "
        f"{checked.box_error:.1e} relative (limit {BOX_RTOL:g}), scores within "
        f"{checked.score_error:.1e} (limit {SCORE_ATOL:g}), labels equal",
    ]
    if checked.ties:
        lines.append(
            f"  {checked.ties} images differ only among detections with exactly tied "
            "scores (which of them a top-k keeps is arbitrary; each runtime breaks "
            "ties its own way)"
        )
    lines += [f"  DIFFERS {f}" for f in checked.failures[:10]]
    for name, (a, b) in checked.coco.items():
        lines.append(
            f"  val {name}: PyTorch {a:.4f}, exported {b:.4f} "
            f"(difference {abs(a - b):.4f}, limit {MAP_ATOL:g})"
        )
    ms = report["median_ms"]
    if ms["pytorch"] is not None:
        lines.append(
            f"  median latency per image (batch 1, this CPU): PyTorch "
            f"{ms['pytorch']:.1f} ms, exported {ms['exported']:.1f} ms"
        )
    lines.append(_verdict(checked))
    return "\n".join(lines)


def _verdict(checked: Verification) -> str:
    """Whether the file is usable, plainly: what matters is the same detections (up to
    near-tied scores at a cut) and the same mAP."""
    same_map = all(abs(a - b) <= MAP_ATOL for a, b in checked.coco.values())
    differ = checked.images - checked.same - checked.ties
    if checked.ok:
        return (
            f"PASSED: the file is usable: the same detections as PyTorch on every image "
            f"(up to near-tied scores at a cut on {checked.ties}), val mAP within {MAP_ATOL:g}"
        )
    why = [f"{differ} images with other detections (DIFFERS above)"] if differ else []
    why += [] if same_map else [f"val mAP differs by more than {MAP_ATOL:g}"]
    return f"FAILED: the file does not behave as the checkpoint: {'; '.join(why)}"
