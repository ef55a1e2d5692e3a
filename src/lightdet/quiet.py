"""Messages that need no action, filtered at their source, so that what a run prints is worth
reading: Lightning's deprecation notes about its own internals and its product tips, its
model-summary note on bf16, the throughput monitor's note on FLOPs (lightdet reports images/s),
and ClearML's GPU probing on machines without a GPU and its note on git repositories without a
remote. Everything else (and every warning about the user's data or config) is kept.
"""

from __future__ import annotations

import logging
import warnings

# (category, message regex) of Python warnings that need no action
_WARNINGS = (
    (FutureWarning, r".*isinstance\(treespec, LeafSpec\)` is deprecated"),
    (UserWarning, r"Precision .* is not supported by the model summary"),
    (UserWarning, r"When using the `ThroughputMonitor`, you need to define a `flops_per_batch`"),
)
_TIP = "💡 Tip:"  # Lightning's advertisements for litlogger and litmodels


class _NoTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TIP)


class _OnlyErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def install() -> None:
    """Install the filters (idempotent): Python warnings and two loggers' records."""
    for category, message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, kind in (
        ("pytorch_lightning.utilities.rank_zero", _NoTips),
        ("lightning.pytorch.utilities.rank_zero", _NoTips),
        ("clearml.Repository Detection", _OnlyErrors),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def resource_monitor():
    """ClearML's resource monitor for ``Task.init``: its own where a GPU is visible; without
    one, the same monitor (CPU, memory, disk, network) that does not probe for GPUs, which
    otherwise warns twice on every run ("NVML Shared Library Not Found", "GPU monitoring
    failed")."""
    import torch

    if torch.cuda.is_available():
        return True
    from clearml.utilities.resource_monitor import ResourceMonitor

    class CPUResourceMonitor(ResourceMonitor):
        def __init__(self, task, **kwargs) -> None:
            super().__init__(task, **kwargs)
            self._gpustat = None  # no GPU here: nothing to probe

    return CPUResourceMonitor
