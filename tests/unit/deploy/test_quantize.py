"""INT8 files: every family quantises and runs in onnxruntime on images of other sizes; only
the network's nodes read quantised tensors; the weights shrink; the mAP gate's arithmetic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from lightdet.deploy.export import export_file, load_runner
from lightdet.deploy.gate import gate_lines, map_gate
from lightdet.deploy.quantize import NETWORK_OPS, QuantizationError, quantize_int8
from tests.unit.deploy.test_export import MODELS, _net


def _calibration(n: int = 6):
    g = np.random.default_rng(0)
    return [g.random((3, 96, 96), dtype=np.float32) for _ in range(n)]


def _readers_of_dequantised(model) -> list:
    made_by = {o: n for n in model.graph.node for o in n.output}
    return [
        n
        for n in model.graph.node
        if any(getattr(made_by.get(i), "op_type", "") == "DequantizeLinear" for i in n.input)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_every_family_quantises_only_its_network_and_runs(name, tmp_path):
    net = _net(name)
    source = export_file(net, "onnx", tmp_path / "m.onnx", torch.rand(3, 96, 96), {"k": "v"})
    target = tmp_path / "m.int8.onnx"
    info = quantize_int8(source, target, iter(_calibration()))

    weighted = [n for n in onnx.load(str(source)).graph.node if n.op_type in NETWORK_OPS]
    assert info["quantised_nodes"] == len(weighted) > 0 and info["calibration_images"] == 6
    model = onnx.load(str(target))
    # what is quantised: only tensors a convolution or linear layer reads or writes (the
    # network's inputs to them and their outputs, the heads' logits and box deltas among them);
    # the transform before the network reads nothing quantised, and what reads the heads'
    # outputs (decoding, NMS) computes in float32 on their dequantised values
    float_graph = onnx.load(str(source)).graph
    network_io = {
        t for n in float_graph.node if n.op_type in NETWORK_OPS for t in (*n.input, *n.output)
    }
    # (weights are stored as int8 with a DequantizeLinear only: every QuantizeLinear is an
    # activation's)
    quantised = [n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantised and set(quantised) <= network_io
    readers = _readers_of_dequantised(model)
    assert {n.op_type for n in readers} >= {"Conv"}
    assert [n.name for n in readers if n.name.startswith("/net/transform/")] == []
    assert not model.graph.value_info  # see quantize_int8: it broke onnxruntime's shapes
    assert target.stat().st_size < 0.45 * source.stat().st_size  # int8 weights, float biases

    run = load_runner(target)
    for shape in ((3, 96, 96), (3, 80, 120), (3, 64, 64)):
        boxes, scores, labels = run(np.random.default_rng(1).random(shape, dtype=np.float32))
        assert boxes.shape == (len(scores), 4) and labels.shape == scores.shape
        assert boxes.dtype == np.float32 and labels.dtype == np.int64


def test_no_calibration_image_is_an_error_naming_the_file(tmp_path):
    net = _net("ssd")
    source = export_file(net, "onnx", tmp_path / "ssd.onnx", torch.rand(3, 96, 96), {})
    with pytest.raises(QuantizationError, match=r"^ssd\.onnx: INT8 quantisation failed"):
        quantize_int8(source, tmp_path / "out.onnx", iter([]))


def test_the_gate_passes_a_drop_up_to_max_map_drop_and_fails_past_it():
    at_limit = map_gate({"map": (0.50, 0.49), "map_50": (0.80, 0.81)}, 0.01)
    assert at_limit["passed"] and at_limit["change"]["map"] == pytest.approx(-0.01)
    assert at_limit["change"]["map_50"] == pytest.approx(0.01)
    past = map_gate({"map": (0.50, 0.4899), "map_50": (0.80, 0.90)}, 0.01)
    assert not past["passed"]  # the gate reads map (0.5:0.95); a better map_50 does not help
    gained = map_gate({"map": (0.30, 0.32)}, 0.0)
    assert gained["passed"] and gained["file"]["map"] == 0.32 and gained["pytorch"]["map"] == 0.30
    assert gate_lines(past, "INT8")[-1] == (
        "FAILED the gate: val map lost 0.0101, more than max_map_drop=0.01"
    )
    assert gate_lines(gained, "INT8")[-1] == (
        "PASSED the gate: val map lost 0.0000 (allowed: 0, max_map_drop)"
    )
    with pytest.raises(ValueError, match="needs the validation split's mAP"):
        map_gate({}, 0.01)
