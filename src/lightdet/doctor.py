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
    """Whether a bfloat16 matmul runs on this CPU, and how fast against float32."""
    import torch

    a = torch.randn(256, 256)
    try:
        timings = {}
        for dtype in (torch.float32, torch.bfloat16):
            x = a.to(dtype)
            x @ x  # warm-up
            start = time.perf_counter()
            for _ in range(20):
                x @ x
            timings[dtype] = time.perf_counter() - start
    except RuntimeError as err:
        return f"no ({str(err).splitlines()[0]})"
    ratio = timings[torch.float32] / timings[torch.bfloat16]
    return (
        f"yes (a 256x256 matmul {ratio:.1f}x float32's speed; CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()})"
    )


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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows += [
        ("CPU cores", f"{cores} usable by this process ({os.cpu_count()} on the machine)"),
        ("torch threads", str(torch.get_num_threads())),
        ("CPU bfloat16", _bf16_cpu()),
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
