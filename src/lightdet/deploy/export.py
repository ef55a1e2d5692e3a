"""Writing a torchvision detector as an ONNX or TorchScript file, and running such a file.

Both formats are made by tracing (torch's TorchScript-based ONNX exporter, ``torch.jit.trace``)
one image through :class:`SingleImageDetector`. torchvision's detectors take tracing's own code
paths for their resize and box decoding, so the file accepts any image height and width. The
batch is one image: their postprocessing loops over the images of a batch in Python, which a
trace unrolls for the batch it saw. lightdet's configurable focal-loss heads are not
TorchScript-scriptable (they sum Python lists), which tracing does not need.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
OPSET = 17  # ONNX opset: onnxruntime 1.16+ runs it; torchvision's detection ops need >= 11
OUTPUTS = ("boxes", "scores", "labels")
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class ExportError(RuntimeError):
    """A detector that cannot be exported; the message names the model and what blocks it."""


class SingleImageDetector(nn.Module):
    """One image in, three tensors out: the traceable face of a torchvision detector.

    Input: float32 ``[3, H, W]`` RGB in [0, 1] (the data contract); outputs ``boxes`` float32
    ``[N, 4]`` xyxy in the input's pixels, ``scores`` float32 ``[N]``, ``labels`` int64 ``[N]``
    in 1..K, after the detector's own score threshold, NMS and detections-per-image cap.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.net([image])[0]
        return out["boxes"], out["scores"], out["labels"]


def export_file(
    net: nn.Module, fmt: str, path: Path, sample: Tensor, metadata: Mapping[str, str]
) -> Path:
    """Trace ``net`` on ``sample`` (float ``[3, H, W]``) into ``path`` as ``fmt``, with
    ``metadata`` (ONNX: ``metadata_props``; TorchScript: the extra file ``lightdet.json``).

    Raises:
        ExportError: the exporter refused the model (its first line, and the model's name).
    """
    import warnings

    wrapper = SingleImageDetector(net).eval()
    name = type(net).__name__
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings on torchvision's own shape code
            if fmt == "onnx":
                _onnx(wrapper, path, sample, metadata)
            elif fmt == "torchscript":
                traced = torch.jit.trace(wrapper, (sample,), check_trace=False)
                extra = {"lightdet.json": json.dumps(dict(metadata))}
                torch.jit.save(traced, str(path), _extra_files=extra)
            else:
                raise ExportError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    except ExportError:
        raise
    except Exception as err:  # the exporters raise many kinds; the user needs the first line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{name}: {fmt} export failed: {type(err).__name__}: {first}") from err
    return path


def _onnx(wrapper: nn.Module, path: Path, sample: Tensor, metadata: Mapping[str, str]) -> None:
    torch.onnx.export(
        wrapper,
        (sample,),
        str(path),
        opset_version=OPSET,
        dynamo=False,
        input_names=["image"],
        output_names=list(OUTPUTS),
        dynamic_axes={
            "image": {1: "height", 2: "width"},
            "boxes": {0: "detections"},
            "scores": {0: "detections"},
            "labels": {0: "detections"},
        },
    )
    write_metadata(path, metadata)


def write_metadata(path: str | os.PathLike, metadata: Mapping[str, str]) -> None:
    """Set an ONNX file's metadata (``metadata_props``) to ``metadata``, replacing what it
    held."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata an exported file carries (class names, input, threshold, ...)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    files = {"lightdet.json": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files["lightdet.json"] or "{}")


def load_runner(path: str | os.PathLike, threads: int | None = None) -> Runner:
    """A function from a float32 ``[3, H, W]`` array to ``(boxes, scores, labels)`` arrays:
    onnxruntime on the CPU for ``.onnx`` (``threads`` intra-op threads; None: its default, one
    per physical core), torch for TorchScript."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda image: tuple(session.run(None, {"image": image}))  # type: ignore[return-value]
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(image: np.ndarray):
        with torch.no_grad():
            return tuple(t.numpy() for t in module(torch.from_numpy(image)))

    return run
