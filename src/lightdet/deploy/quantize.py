"""INT8 ONNX files for CPUs: post-training static quantisation with onnxruntime's toolkit.

Only the network is quantised: the convolutions and fully connected layers (``Conv``,
``Gemm``, ``MatMul`` nodes: in a torchvision detector these are the backbone, the FPN and the
heads, nothing else), their weights per output channel as int8 and their inputs as uint8 with
ranges calibrated on images the detector is given as it is deployed. Everything else, the
resize and normalisation inside the file, anchor generation, box decoding, score threshold and
NMS, stays float32 and runs as in the float file. The file is a QDQ model (Quantize/Dequantize
pairs around those nodes), which onnxruntime's CPU provider fuses into integer kernels (VNNI
where the CPU has it) and other runtimes read as well.

onnxruntime's quantiser was chosen over NNCF by measurement (``benchmarks/quantization.py``,
``benchmarks/results/quantization_bccd.md``, 2-core AMD EPYC): on the BCCD RetinaNet, NNCF's
``quantize`` with its defaults lost 0.043 val mAP where this loses 0.003, at the same INT8
speed; OpenVINO's runtime reads this QDQ file and runs it as fast as its own INT8 model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

# the node types that carry the network's weights (see the module docstring)
NETWORK_OPS = ("Conv", "Gemm", "MatMul")


class QuantizationError(RuntimeError):
    """The quantiser failed; the message names the file and the toolkit's first line."""


def quantize_int8(source: Path, target: Path, images: Iterable[np.ndarray]) -> dict:
    """Write ``source`` (a float32 ONNX detector of :func:`lightdet.deploy.export.export_file`)
    to ``target`` as INT8, calibrated on ``images`` (float32 ``[3, H, W]`` in [0, 1]).

    Returns what was done (toolkit, scheme, nodes quantised, images seen), for the report.

    Raises:
        QuantizationError: no calibration image, or the toolkit failed.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = _Reader(iter(images))
    try:
        with _quiet_root_logger():
            quantize_static(
                str(source),
                str(target),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(NETWORK_OPS),
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    except Exception as err:  # the toolkit raises many kinds; the user needs the first line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise QuantizationError(
            f"{source.name}: INT8 quantisation failed: {type(err).__name__}: {first}"
        ) from err
    if reader.seen == 0:
        raise QuantizationError(f"{source.name}: no calibration image")
    model = onnx.load(str(target))
    # The quantiser leaves ONNX shape inference's value_info in the file. onnxruntime then
    # treats two of the inferred symbolic sizes of torchvision's box clipping as equal and
    # fails on every image ("cannot be reshaped ... {0,2,2} -> {0,-1}"); the float file has
    # no value_info and runs. Without it, onnxruntime infers shapes from the real inputs.
    del model.graph.value_info[:]
    onnx.save(model, str(target))
    quantised = sum(n.op_type in ("QLinearConv", "DequantizeLinear") for n in model.graph.node)
    return {
        "toolkit": f"onnxruntime.quantization {onnxruntime.__version__} (quantize_static)",
        "scheme": "QDQ; weights int8 per output channel, activations uint8 per tensor "
        "(asymmetric), ranges by min/max over the calibration images",
        "quantised_ops": list(NETWORK_OPS),
        "quantised_nodes": count_quantised(model),
        "dequantize_nodes": quantised,
        "calibration_images": reader.seen,
    }


def calibration_images(
    datamodule, split: str, wanted: int
) -> tuple[Iterator[np.ndarray], int, int]:
    """``(images, how many, the split's size)``: float32 ``[3, H, W]`` arrays of ``wanted``
    images spread evenly over ``split``, under the evaluation transform.

    Raises:
        QuantizationError: the data has no such split, or it is empty.
    """
    from lightdet.data.dataset import DetectionDataset

    datamodule.setup("fit" if split == "train" else split)
    if not datamodule.has_split(split):
        raise QuantizationError(f"quantize.calibration_split={split}: the data has no such split")
    source = datamodule.datasets[split]
    total = len(source)
    if total == 0:
        raise QuantizationError(f"quantize.calibration_split={split}: the split is empty")
    chosen = np.unique(np.linspace(0, total - 1, min(wanted, total)).round().astype(int))
    dataset = DetectionDataset(
        [source.records[i] for i in chosen],
        datamodule.eval_transform,
        datamodule.policy.max_image_pixels,
    )
    images = (dataset[i][0].numpy() for i in range(len(dataset)))
    return images, len(chosen), total


def count_quantised(model) -> int:
    """How many of the network's nodes (:data:`NETWORK_OPS`) read a dequantised input."""
    made_by = {o: n for n in model.graph.node for o in n.output}
    return sum(
        n.op_type in NETWORK_OPS
        and any(getattr(made_by.get(i), "op_type", "") == "DequantizeLinear" for i in n.input)
        for n in model.graph.node
    )


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantiser logs through the root logger: a line per bias it copies (INFO) and advice
    to run its pre-processing first (WARNING). That pre-processing is not used: its shape
    inference leaves the value_info that breaks the file (see :func:`quantize_int8`)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Reader:
    """onnxruntime's calibration data reader over an iterator of images."""

    def __init__(self, images: Iterator[np.ndarray]) -> None:
        self.images, self.seen = images, 0

    def get_next(self) -> dict | None:
        image = next(self.images, None)
        if image is None:
            return None
        self.seen += 1
        return {"image": np.ascontiguousarray(image, dtype=np.float32)}

    def rewind(self) -> None:  # part of the reader's interface; one pass is all MinMax needs
        pass
