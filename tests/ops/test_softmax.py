"""Softmax, LogSoftmax and Hardmax against onnxruntime: legacy 2-D coercion (opset 11) and per-axis (13)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import runtime as rt

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(2)
OPS = ["Softmax", "LogSoftmax", "Hardmax"]


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, None])
def test_axes_and_coercion(op: str, opset: int, axis: int | None) -> None:
    x = _rand(2, 3, 4, 5)
    attrs = {} if axis is None else {"axis": axis}
    assert_matches(node_model(op, {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_large_values_are_stable(op: str) -> None:
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -3000.0]], np.float32)
    model = node_model(op, {"x": x}, opset=13)
    assert_matches(model, {"x": x})
    y = rt.Core(compile_threads=1).compile_model(model).infer({"x": x})["y"]
    assert np.isfinite(y).all()


def test_softmax_rows_sum_to_one_in_attention_shape() -> None:
    x = _rand(1, 4, 8, 8) * 10
    y = rt.Core(compile_threads=1).compile_model(node_model("Softmax", {"x": x}, opset=13)).infer({"x": x})["y"]
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)


def test_hardmax_ties_pick_the_first() -> None:
    x = np.array([[3, 1, 3], [2, 2, 2]], np.float32)
    y = rt.Core(compile_threads=1).compile_model(node_model("Hardmax", {"x": x}, opset=13)).infer({"x": x})["y"]
    np.testing.assert_array_equal(y, [[1, 0, 0], [1, 0, 0]])


def test_float64_and_opset1() -> None:
    x = _rand(3, 4).astype(np.float64)
    assert_matches(node_model("Softmax", {"x": x}, opset=1), {"x": x})


def test_integer_input_is_a_shape_error() -> None:
    x = np.ones((2, 3), np.int32)
    with pytest.raises(rt.ShapeError, match="floating-point"):
        rt.Core(compile_threads=1).compile_model(node_model("Softmax", {"x": x}, opset=13))


def test_axis_out_of_range_is_a_shape_error() -> None:
    x = _rand(2, 3)
    with pytest.raises(rt.ShapeError, match="axis"):
        rt.Core(compile_threads=1).compile_model(node_model("Softmax", {"x": x}, opset=13, axis=2))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [11, 13])
def test_in_place_over_a_dying_input(op: str, opset: int) -> None:
    """After Neg, the input dies at the op: reuse/arena run it in place over Neg's buffer."""
    x = _rand(2, 3, 8)
    nodes = [helper.make_node("Neg", ["x"], ["t"]), helper.make_node(op, ["t"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "inplace", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    assert_matches(model, {"x": x})
    compiled = rt.Core(compile_threads=1).compile_model(model, memory_mode="arena")
    compiled.infer({"x": x})
    plan = compiled.current_plan()
    assert plan is not None and plan[1].inplace_pairs == 1
