"""ConvTranspose against onnxruntime: strides, pads and output_padding, groups, dilations, auto_pad,
output_shape, 1-D/3-D, fusion; and the memset ("zero_init") contract across inferences and policies."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model, run_ort

RNG = np.random.default_rng(5)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "c,m,k,attrs",
    [
        (3, 4, 3, {}),
        (3, 4, 2, {"strides": [2, 2]}),  # non-overlapping taps, memset path
        (3, 4, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),  # classic 2x up
        (4, 6, 3, {"strides": [2, 1], "pads": [0, 1, 2, 0]}),
        (4, 6, 3, {"group": 2, "strides": [2, 2]}),
        (4, 4, 3, {"group": 4, "pads": [1, 1, 1, 1]}),
        (2, 3, 3, {"dilations": [2, 2], "strides": [2, 2]}),
        (2, 3, 3, {"strides": [2, 2], "output_padding": [1, 0]}),
        (2, 3, 3, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
        (2, 3, 4, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
        (2, 3, 3, {"strides": [2, 2], "output_shape": [10, 12]}),
    ],
)
@pytest.mark.parametrize("batch", [1, 2])
def test_conv_transpose_2d(c: int, m: int, k: int, attrs: dict, batch: int) -> None:
    group = attrs.get("group", 1)
    x, w, b = _rand(batch, c, 5, 6), _rand(c, m // group, k, k), _rand(m)
    model = node_model("ConvTranspose", {"x": x}, initializers={"w": w, "b": b}, **attrs)
    assert_matches(model, {"x": x})


def test_conv_transpose_without_bias_and_weight_as_input() -> None:
    x, w = _rand(1, 2, 4, 4), _rand(2, 3, 3, 3)
    assert_matches(node_model("ConvTranspose", {"x": x, "w": w}, strides=[2, 2], pads=[1, 1, 1, 1]), {"x": x, "w": w})


def test_conv_transpose_1d_and_3d() -> None:
    x1, w1 = _rand(2, 3, 7), _rand(3, 2, 4)
    assert_matches(node_model("ConvTranspose", {"x": x1}, initializers={"w": w1}, strides=[3], pads=[1, 2]), {"x": x1})
    x3, w3 = _rand(1, 2, 3, 4, 3), _rand(2, 3, 2, 3, 2)
    assert_matches(node_model("ConvTranspose", {"x": x3}, initializers={"w": w3}, strides=[2, 1, 2]), {"x": x3})


def _plan_zero_init(model: onnx.ModelProto) -> list[int]:
    step = rt.Core(compile_threads=1).compile_model(model).describe_plan()[0]
    return step["zero_init"]


def test_memset_only_without_crop() -> None:
    x, w = _rand(1, 2, 4, 4), _rand(2, 3, 3, 3)
    assert _plan_zero_init(node_model("ConvTranspose", {"x": x}, initializers={"w": w}, strides=[2, 2])) == [0]
    cropped = node_model("ConvTranspose", {"x": x}, initializers={"w": w}, strides=[2, 2], pads=[1, 1, 1, 1])
    assert _plan_zero_init(cropped) == []


@pytest.mark.parametrize("policy", [0, 1])
@pytest.mark.parametrize("mode", rt.MEMORY_MODES)
def test_memset_output_is_fresh_on_every_inference(policy: int, mode: str) -> None:
    """Two ConvTransposes in a row, run twice: an accumulating kernel must not see stale sums."""
    x, w1, w2 = _rand(1, 2, 4, 4), _rand(2, 3, 2, 2), _rand(3, 2, 3, 3)
    nodes = [helper.make_node("ConvTranspose", ["x", "w1"], ["t"], strides=[2, 2]),
             helper.make_node("ConvTranspose", ["t", "w2"], ["y"], output_padding=[1, 1], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "ct2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    expected = run_ort(model, {"x": x})[0]
    core = rt.Core(compile_threads=1, memory_config=rt.MemoryConfig(atomic_clean_policy=policy))
    compiled = core.compile_model(model, memory_mode=mode)
    for _ in range(3):
        np.testing.assert_allclose(compiled.infer({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)


def test_fused_relu() -> None:
    x, w = _rand(1, 2, 4, 4), _rand(2, 3, 3, 3)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2]),
             helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(
        nodes, "ctr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    compiled = rt.Core(compile_threads=1).compile_model(model)
    assert compiled.pass_stats.get("fused_activations") == 1
    assert_matches(model, {"x": x})


def test_channel_mismatch_is_a_shape_error() -> None:
    x, w = _rand(1, 3, 4, 4), _rand(2, 3, 3, 3)
    with pytest.raises(rt.ShapeError, match="group"):
        rt.Core(compile_threads=1).compile_model(node_model("ConvTranspose", {"x": x}, initializers={"w": w}))
