"""``trainer.precision: auto``: the precision that suits the machine a run lands on.

On a GPU, bf16 mixed precision where the GPU has it (no gradient scaler), else fp16 mixed. On
a CPU, bf16 autocast only where the CPU computes bfloat16 natively (AVX512-BF16 or AMX): there
a RetinaNet step was 1.65x faster than fp32; where bfloat16 is emulated it was 2.2x *slower*
(a newcomer's Xeon with AVX512-VNNI only), so fp32. Resolved when the trainer is built, on the
machine that runs it: a task cloned to a GPU agent gets the GPU's choice, and the config
recorded in ClearML keeps ``auto``.
"""

from __future__ import annotations

import functools
from pathlib import Path

AUTO = "auto"
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (not emulated through float32)."""
    return any(flag in cpu_flags() for flag in _NATIVE_BF16_FLAGS)


def on_gpu(accelerator: str | None) -> bool:
    """Whether a trainer with this ``accelerator`` runs on a CUDA GPU."""
    import torch

    name = str(accelerator or AUTO).lower()
    return name in ("gpu", "cuda") or (name == AUTO and torch.cuda.is_available())


def resolve_precision(precision: str | int | None, accelerator: str | None) -> tuple[str, str]:
    """``(Lightning's precision, why)`` for a configured one; anything but ``auto`` is kept."""
    if str(precision) != AUTO:
        return precision, "as configured"
    if on_gpu(accelerator):
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed", "auto: the GPU has bfloat16"
        return "16-mixed", "auto: the GPU has no bfloat16"
    if native_bf16_cpu():
        return "bf16-mixed", "auto: this CPU computes bfloat16 natively (AVX512-BF16/AMX)"
    return "32-true", "auto: this CPU emulates bfloat16 (slower than float32)"


def trainer_precision(trainer_config) -> str | int:
    """The precision to build the configured trainer with (``trainer.precision``, ``auto``
    resolved here and said in the log)."""
    import logging

    configured = trainer_config.get("precision")
    precision, why = resolve_precision(configured, trainer_config.get("accelerator"))
    if str(configured) == AUTO:
        logging.getLogger(__name__).info("precision %s (%s)", precision, why)
    return precision
