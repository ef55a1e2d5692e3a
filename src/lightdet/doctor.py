"""``make doctor``: what this machine offers lightdet, in one screen.

Versions of the libraries lightdet is built on, the CPU (cores this process may use, bfloat16
support, torch threads), the GPUs, whether a ClearML server is configured and answers, and the
free disk under ``logs/`` and ``data/``. Nothing is written.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from lightdet.threads import affinity_cores

PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "torchmetrics",
    "clearml",
    "hydra-core",
    "albumentations",
    "onnxruntime",
    "optuna",
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _bf16_cpu() -> str:
    """Native or emulated bfloat16 on this CPU, what ``precision: auto`` picks, and a 3x3
    convolution's speed in bf16 autocast against float32 (a detector's work, not a matmul)."""
    from lightdet.lightning.precision import native_bf16_cpu, resolve_precision

    native = "native (AVX512-BF16/AMX)" if native_bf16_cpu() else "emulated"
    picked = resolve_precision("auto", "cpu")[0]
    try:
        ratio = f"; 3x3 convolutions in bf16 at {_conv_ratio():.2f}x float32's speed"
    except RuntimeError as err:
        ratio = f"; bf16 does not run ({str(err).splitlines()[0]})"
    return f"{native}: precision auto trains in {picked}{ratio}"


def _conv_ratio(repeats: int = 3) -> float:
    """float32 time / bf16 autocast time of four 64-channel 3x3 convolutions with ReLUs on
    1x64x96x96 (chained, so activations stay in bf16 as in a network: one convolution alone
    mostly measures the cast of its input), medians of alternating runs (A B A B)."""
    import torch

    layers = [(torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU()) for _ in range(4)]
    conv = torch.nn.Sequential(*[m for pair in layers for m in pair])
    x = torch.randn(1, 64, 96, 96)
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for _ in range(repeats):
            for bf16 in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    conv(x)  # warm-up of this setting
                    start = time.perf_counter()
                    for _ in range(3):
                        conv(x)
                    times[bf16].append(time.perf_counter() - start)
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return median(times[False]) / median(times[True])


def _load() -> str:
    """The machine's load against the cores this process may use: a busy machine slows a run."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    one, five, _ = os.getloadavg()
    cores = affinity_cores()
    busy = " (busy: other work shares these cores)" if one > 0.5 * (cores or 1) else ""
    return f"{one:.1f} over 1 min, {five:.1f} over 5 min, {cores} cores{busy}"


def _free(path: Path) -> str:
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    usage = shutil.disk_usage(existing)
    return f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB ({existing})"


def report(root: str | os.PathLike = ".") -> list[tuple[str, str]]:
    """``(what, value)`` rows."""
    import torch

    from lightdet.tracking.server import api_host, server_configured, server_reachable

    rows = [("python", f"{sys.version.split()[0]} ({platform.platform()})")]
    rows += [(name, _version(name)) for name in PACKAGES]
    built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
    rows[1] = ("torch", f"{torch.__version__} ({built} build)")
    cores = affinity_cores()
    rows += [
        ("CPU cores", f"{cores} usable by this process ({os.cpu_count()} on the machine)"),
        ("torch threads", str(torch.get_num_threads())),
        ("CPU bfloat16", _bf16_cpu()),
        ("CPU load", _load()),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(
                (
                    f"GPU {i}",
                    f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                    f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}",
                )
            )
    else:
        rows.append(("GPUs", "none visible (training runs on the CPU)"))
    if not server_configured():
        rows.append(
            (
                "ClearML server",
                "not configured: runs are recorded offline (`clearml-init` to set one up)",
            )
        )
    else:
        host = api_host()
        answers = server_reachable(host, tries=1, timeout=5.0, login=True)
        rows.append(("ClearML server", f"{host}: {'answers' if answers else 'does not answer'}"))
    root = Path(root)
    rows += [("disk logs/", _free(root / "logs")), ("disk data/", _free(root / "data"))]
    return rows


def main() -> None:
    rows = report(os.environ.get("LIGHTDET_ROOT", "."))
    width = max(len(what) for what, _ in rows)
    from lightdet.guard.secrets import scrub_line

    print(scrub_line("\n".join(f"{what:<{width}}  {value}" for what, value in rows)))


if __name__ == "__main__":
    main()
