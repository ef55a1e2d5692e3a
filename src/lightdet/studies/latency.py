"""Inference latency, size and memory of a trained detector, measured the same way for every
model of a study.

What is timed: :meth:`lightdet.Detector.forward` on images already decoded and converted
(the detector's own transform, i.e. normalisation and resize, its forward and its
postprocessing: box decoding, score threshold, NMS), under the precision the run was
validated with. Image decoding is not timed. Each batch size is run ``warmup`` times untimed,
then ``repeats`` times timed (CUDA synchronised around each), in ``blocks`` blocks taken in
turn; the figure is milliseconds per image in the quietest block (lowest median): its median,
and its 10th-90th percentile spread, with every block's median kept beside it. Each model is
measured in a fresh process (no allocator state or threads left by training or by another
model). Peak memory: what loading and running the model added to the process's resident
memory at its peak (Linux's VmHWM, reset after the imports); on CUDA also the peak allocated
by torch.

Run as ``python -m lightdet.studies.latency <request.json> <result.json>``; from Python,
:func:`measure_in_subprocess`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

SETTINGS = ("batch_sizes", "warmup", "repeats", "blocks", "threads", "device")


def time_batches(detector, images: list, batch_size: int, warmup: int, repeats: int) -> dict:
    """Milliseconds per image of ``detector.forward`` on ``batch_size`` images (cycled from
    ``images``): median, 10th and 90th percentiles, min and max over ``repeats`` runs."""
    import torch

    batch = [images[i % len(images)] for i in range(batch_size)]
    cuda = detector.device.type == "cuda"
    for _ in range(warmup):
        detector.forward(batch)
    per_image = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(detector.device)
        start = time.perf_counter()
        detector.forward(batch)
        if cuda:
            torch.cuda.synchronize(detector.device)
        per_image.append((time.perf_counter() - start) * 1000 / batch_size)
    deciles = statistics.quantiles(per_image, n=10, method="inclusive")
    return {
        "median_ms": statistics.median(per_image),
        "p10_ms": deciles[0],
        "p90_ms": deciles[-1],
        "min_ms": min(per_image),
        "max_ms": max(per_image),
        "repeats": repeats,
    }


def quietest_blocks(detector, images: list, settings: dict) -> dict[str, dict]:
    """Per batch size, :func:`time_batches` in ``blocks`` blocks taken in turn (batch 1, 8,
    1, 8...), and the block with the lowest median kept, with every block's median. A shared
    CPU slows some seconds of a run down (another process, the hypervisor): the quietest
    block is what the model costs, and the same from one run to the next."""
    sizes = [int(bs) for bs in settings["batch_sizes"]]
    blocks: dict[int, list[dict]] = {bs: [] for bs in sizes}
    for block in range(int(settings.get("blocks") or 1)):
        for bs in sizes:
            warmup = int(settings["warmup"]) if block == 0 else 1
            blocks[bs].append(time_batches(detector, images, bs, warmup, int(settings["repeats"])))
    kept = {}
    for bs, timings in blocks.items():
        best = min(timings, key=lambda t: t["median_ms"])
        kept[str(bs)] = {**best, "block_medians_ms": [t["median_ms"] for t in timings]}
    return kept


def measure(checkpoint: str, image_paths: list[str], settings: dict) -> dict:
    """Latency per batch size, parameters and peak memory of the checkpoint's detector; with
    ``settings["runtime"]`` one of the file runtimes, of ``settings["file"]`` (its ONNX file)
    in onnxruntime instead (:func:`measure_file`)."""
    if settings.get("runtime", "pytorch") != "pytorch":
        return measure_file(settings["file"], image_paths, settings)
    # imported before the memory baseline: the peak is the model's, not the imports'
    import torch
    import torchvision.models.detection  # noqa: F401

    import lightdet.data.transforms  # noqa: F401
    import lightdet.models.restore  # noqa: F401
    from lightdet.detector import Detector

    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    baseline_mib = _rss_mib("VmRSS")
    _reset_peak_rss()
    detector = Detector.from_checkpoint(checkpoint, device=settings.get("device"))
    images = detector.images(image_paths)
    if detector.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(detector.device)
    latency = quietest_blocks(detector, images, settings)
    cuda_mib = (
        torch.cuda.max_memory_allocated(detector.device) / 2**20
        if detector.device.type == "cuda"
        else None
    )
    from lightdet.deploy.runtimes import is_two_stage

    return {
        "runtime": "pytorch",
        "two_stage": is_two_stage(detector.net),
        "latency": latency,
        "params": sum(p.numel() for p in detector.net.parameters()),
        # what loading and running the model added to the process at its peak
        "peak_mib": _rss_mib("VmHWM") - baseline_mib,
        "peak_rss_mib": _rss_mib("VmHWM"),
        "rss_before_model_mib": baseline_mib,
        "peak_cuda_mib": cuda_mib,
        "device": _device_name(detector.device),
        "threads": torch.get_num_threads(),
        "precision": detector.precision,
        "image_sizes": sorted({tuple(i.shape[1:]) for i in images}),
        "torch": torch.__version__,
        "model": (detector.config.get("model") or {}).get("name"),
        "backbone": ((detector.config.get("model") or {}).get("net") or {}).get("backbone")
        or (detector.config.get("model") or {}).get("backbone"),
    }


class _FileDetector:
    """An ONNX file in :func:`time_batches`' terms: a batch is its images run one by one (the
    file takes one image; its postprocessing is traced for one)."""

    def __init__(self, runner) -> None:
        import torch

        self.runner, self.device = runner, torch.device("cpu")

    def forward(self, images) -> list:
        return [self.runner(image.numpy()) for image in images]


def measure_file(path: str, image_paths: list[str], settings: dict) -> dict:
    """Latency at batch 1 and peak memory of an ONNX detector file in onnxruntime's CPU
    provider, timed as :func:`measure` times PyTorch (same images, blocks and repeats)."""
    import onnxruntime
    import torch  # noqa: F401  (the images are tensors; imported before the baseline)

    from lightdet.deploy.export import load_runner
    from lightdet.deploy.runtimes import file_threads
    from lightdet.detector import decode_images

    baseline_mib = _rss_mib("VmRSS")
    _reset_peak_rss()
    threads = settings.get("threads")
    detector = _FileDetector(load_runner(path, threads))
    images = decode_images(image_paths)
    latency = quietest_blocks(detector, images, {**settings, "batch_sizes": [1]})
    runtime = str(settings["runtime"])
    return {
        "runtime": runtime,
        "file": str(path),
        "file_mb": Path(path).stat().st_size / 2**20,
        "latency": latency,
        "peak_mib": _rss_mib("VmHWM") - baseline_mib,
        "peak_rss_mib": _rss_mib("VmHWM"),
        "rss_before_model_mib": baseline_mib,
        "peak_cuda_mib": None,
        "device": _device_name(detector.device),
        "threads": file_threads(threads),
        "precision": runtime.split("-", 1)[1],
        "image_sizes": sorted({tuple(i.shape[1:]) for i in images}),
        "onnxruntime": onnxruntime.__version__,
    }


def measure_in_subprocess(
    checkpoint: str, image_paths: list[str], settings: dict, folder: Path
) -> dict:
    """:func:`measure` in a fresh Python process; its request and result stay in ``folder``.

    Raises:
        RuntimeError: the process failed, with the end of its output.
    """
    from lightdet.isolated import run_isolated

    request = {"checkpoint": str(checkpoint), "images": image_paths, "settings": settings}
    names = ("latency_request.json", "latency.json")
    return run_isolated(__name__, request, folder, f"latency of {checkpoint}", names)


def measure_runtimes(
    checkpoint: str | os.PathLike,
    images,
    runtimes: list[str] | tuple[str, ...] = ("pytorch", "onnx-fp32", "onnx-int8"),
    *,
    threads: int | None = None,
    batch_sizes: list[int] | tuple[int, ...] = (1,),
    repeats: int = 15,
    blocks: int = 3,
    warmup: int = 3,
    calibration_images: int = 200,
    folder: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """The Python API of ``make compare RUNTIMES=...``: a checkpoint's latency in each runtime
    (see :mod:`lightdet.deploy.runtimes`), measured as a study measures it, each in a fresh
    process, one after another.

    Args:
        images: the images timed (anything :meth:`lightdet.Detector.predict` takes: paths,
            a folder, a glob), cycled through the batches.
        threads: torch and onnxruntime intra-op threads (None: each one's default).
        batch_sizes: PyTorch's; the files run at batch 1.
        folder: where the files and measurements are kept (None: a temporary folder, removed).

    Returns:
        ``{runtime: {"latency": {batch size: {"median_ms", "p10_ms", "p90_ms", ...}},
        "threads", "precision", ...}}``; a file runtime's also has ``"file"`` (None once a
        temporary folder is removed) and ``"coco"``: its val mAP and mAP50 against PyTorch's
        (``{"pytorch": {...}, "file": {...}}``).

    Raises:
        ValueError: an unknown runtime, or images that are not files.
    """
    import tempfile

    from lightdet.deploy.runtimes import FILE_RUNTIMES, check_runtimes, prepare_in_subprocess
    from lightdet.detector import image_inputs

    asked = check_runtimes(runtimes)
    paths = [item.source for item in image_inputs(images)]
    if not paths or None in paths:  # each runtime decodes them in its own process
        raise ValueError("images: image files (paths, a folder or a glob), not arrays")
    settings = {
        "batch_sizes": list(batch_sizes),
        "warmup": warmup,
        "repeats": repeats,
        "blocks": blocks,
        "threads": threads,
        "device": "cpu",
    }
    with tempfile.TemporaryDirectory(prefix="lightdet-runtimes-") as scratch:
        where = Path(folder) if folder is not None else Path(scratch)
        files = [r for r in asked if r in FILE_RUNTIMES]
        prepared = (
            prepare_in_subprocess(checkpoint, where / "files", files, calibration_images)
            if files
            else None
        )
        found = {}
        for runtime in asked:
            extra = {}
            if runtime in FILE_RUNTIMES:
                extra = {"runtime": runtime, "file": prepared["files"][runtime]}
            speed = measure_in_subprocess(
                str(checkpoint), paths, {**settings, **extra}, where / f"speed-{runtime}"
            )
            if runtime in FILE_RUNTIMES:
                coco = prepared["coco"]
                speed["coco"] = {"pytorch": coco["pytorch"], "file": coco[runtime]}
                speed["file"] = speed["file"] if folder is not None else None
            found[runtime] = speed
    return found


def _rss_mib(field: str) -> float:
    """Resident memory now (``VmRSS``) or at its peak (``VmHWM``), from /proc (Linux); the
    lifetime peak elsewhere."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    """Start ``VmHWM`` again from the current resident size (Linux 4.0+), so the peak is the
    model's, not that of the imports before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        name = models[0] if models else name
    return f"cpu ({name}, {os.cpu_count()} logical cores)"


def main(argv: list[str]) -> None:
    request_path, result_path = argv
    request = json.loads(Path(request_path).read_text())
    found = measure(request["checkpoint"], request["images"], request["settings"])
    Path(result_path).write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
