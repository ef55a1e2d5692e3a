"""A checkpoint in the runtimes it is deployed in: PyTorch eager, its ONNX float32 file, its
ONNX INT8 file (CPU). What ``make compare`` times side by side (``study.latency.runtimes``)
and ``benchmarks/quantization.py`` measures.

:func:`prepare` writes the files the way ``make export`` does (the same tracing, the same
quantisation, calibrated on training images) and scores each on the whole validation split of
the checkpoint's data against PyTorch with the export's check (:func:`verify`): the accuracy of
a runtime is PyTorch's plus the change its file makes, measured on the same images by the same
evaluation code. :func:`lightdet.deploy.export.load_runner` runs a file with a stated number of
threads.

Run as ``python -m lightdet.deploy.runtimes <request.json> <result.json>``; from Python,
:func:`prepare_in_subprocess` (a fresh process: its own Hydra, its memory returned after).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# name -> what it is, as tables say it
RUNTIMES = {
    "pytorch": "PyTorch eager (the precision the run was validated in)",
    "onnx-fp32": "onnxruntime CPU, the float32 ONNX file of make export",
    "onnx-int8": "onnxruntime CPU, the INT8 ONNX file of make export PRECISION=int8",
}
FILE_RUNTIMES = ("onnx-fp32", "onnx-int8")


def check_runtimes(runtimes: Sequence[str], key: str = "runtimes") -> list[str]:
    """The runtimes asked for, in order, without repeats.

    Raises:
        ValueError: an unknown runtime, or none (the message names ``key``).
    """
    asked = list(dict.fromkeys(str(r) for r in runtimes))
    unknown = [r for r in asked if r not in RUNTIMES]
    if unknown or not asked:
        raise ValueError(f"{key}={list(runtimes)}: expected one or more of {', '.join(RUNTIMES)}")
    return asked


def prepare(
    checkpoint: str | Path,
    folder: Path,
    runtimes: Sequence[str],
    calibration_images: int = 200,
    progress: Callable[[str], None] = print,
) -> dict:
    """The file of each file runtime in ``runtimes`` (``folder/model.onnx``,
    ``folder/model.int8.onnx``) and each runtime's val COCO mAP and mAP50.

    Returns ``{"files": {runtime: path}, "coco": {runtime: {metric: value}} (PyTorch's under
    "pytorch"), "val_images", "calibration": {"split", "images", "of"} (INT8 only),
    "two_stage", "seconds"}``.
    """
    from lightdet.deploy.export import export_file, load_runner
    from lightdet.deploy.quantize import calibration_images as calibration_set
    from lightdet.deploy.quantize import quantize_int8
    from lightdet.deploy.verify import dataset_items, verify

    started = time.perf_counter()
    wanted = [r for r in check_runtimes(runtimes) if r in FILE_RUNTIMES]
    datamodule, trained = load_trained(checkpoint)
    net = trained.net.float().eval()
    val = datamodule.datasets["val"]
    folder.mkdir(parents=True, exist_ok=True)
    result: dict = {"files": {}, "coco": {}, "val_images": len(val), "calibration": None}
    result["two_stage"] = is_two_stage(net)
    if not wanted:
        return {**result, "seconds": time.perf_counter() - started}
    float_file = export_file(net, "onnx", folder / "model.onnx", val[0][0], {})
    if "onnx-fp32" in wanted:
        result["files"]["onnx-fp32"] = float_file
    if "onnx-int8" in wanted:
        images, count, total = calibration_set(datamodule, "train", calibration_images)
        progress(f"  quantising to INT8 on {count} of the {total} training images")
        target = folder / "model.int8.onnx"
        quantize_int8(float_file, target, images)
        result["files"]["onnx-int8"] = target
        result["calibration"] = {"split": "train", "images": count, "of": total}
    cache: dict = {}
    for runtime, path in result["files"].items():
        progress(f"  scoring {runtime} on the {len(val)} val images against PyTorch")
        checked = verify(
            net,
            load_runner(path),
            dataset_items(val, len(val), False),
            trained.class_names,
            difficult=datamodule.difficult_boxes,
            cache=cache,
        )
        result["coco"]["pytorch"] = {k: float(a) for k, (a, _) in checked.coco.items()}
        result["coco"][runtime] = {k: float(b) for k, (_, b) in checked.coco.items()}
    result["files"] = {k: str(v) for k, v in result["files"].items()}
    return {**result, "seconds": time.perf_counter() - started}


def load_trained(checkpoint: str | Path):
    """``(datamodule, trained net)``: the checkpoint's detector (:func:`restore_net`) and the
    data it was trained on, as ``make export`` composes it (``data_from: checkpoint``), its
    validation split set up."""
    from lightdet.models.restore import restore_net
    from lightdet.runs.build import build_datamodule
    from lightdet.runs.compose import compose_config
    from lightdet.runs.preflight import use_checkpoint_data

    overrides = [f"ckpt_path={checkpoint}"]
    cfg = compose_config("export", overrides, run_dir=False)
    use_checkpoint_data(cfg, overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup("validate")
    return datamodule, restore_net(str(checkpoint), datamodule.class_names)


def prepare_in_subprocess(
    checkpoint: str | Path, folder: Path, runtimes: Sequence[str], calibration_images: int
) -> dict:
    """:func:`prepare` in a fresh Python process; its request and result stay in ``folder``.

    Raises:
        RuntimeError: the process failed, with the end of its output.
    """
    from lightdet.isolated import run_isolated

    request = {
        "checkpoint": str(checkpoint),
        "runtimes": list(runtimes),
        "calibration_images": int(calibration_images),
    }
    what = f"the {', '.join(runtimes)} files of {checkpoint}"
    return run_isolated(
        __name__, request, folder, what, ("request.json", "prepared.json"), show_output=True
    )


def file_threads(threads: int | None) -> int:
    """How many intra-op threads :func:`lightdet.deploy.export.load_runner` runs an ONNX file
    with: ``threads``, else onnxruntime's default (the physical cores it sees, as its docs
    say)."""
    import psutil

    return int(threads) if threads else int(psutil.cpu_count(logical=False) or 1)


def is_two_stage(net) -> bool:
    """Whether the detector proposes regions first and classifies them second (torchvision's
    GeneralizedRCNN: Faster R-CNN), rather than in one shot over a dense grid."""
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

    return isinstance(net, GeneralizedRCNN)


def main(argv: list[str]) -> None:
    request_path, result_path = argv
    request = json.loads(Path(request_path).read_text())
    found = prepare(
        request["checkpoint"],
        Path(result_path).parent,
        request["runtimes"],
        request["calibration_images"],
        progress=lambda line: print(line, flush=True),
    )
    Path(result_path).write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
