"""lightdet: PyTorch Lightning object detectors tracked in ClearML.

The Python API (importing ``lightdet`` loads none of it until it is used)::

    from lightdet import Detector
    detector = Detector.from_checkpoint("logs/retinanet/runs/<run>/checkpoints/best.ckpt")
    for found in detector.predict("images/"):
        print(found.source, found.to_list())

    import lightdet
    result = lightdet.train(["model=retinanet", "trainer.max_epochs=2"])
    metrics = lightdet.evaluate(result.best_checkpoint, split="val")
    speeds = lightdet.measure_runtimes(result.best_checkpoint, "images/", ["pytorch", "onnx-int8"])
"""

from __future__ import annotations

import importlib
from typing import Any

from lightdet import threads

# before any lightdet module imports torch: OpenMP reads its environment once, as torch loads
threads.apply()

__version__ = "0.1.0"

# public name -> the module that defines it; imported on first use (PEP 562)
_API = {
    "Detector": "lightdet.detector",
    "Detections": "lightdet.detector",
    "train": "lightdet.runs.compose",
    "evaluate": "lightdet.runs.compose",
    "TrainResult": "lightdet.runs.train",
    "measure_runtimes": "lightdet.studies.latency",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'lightdet' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
