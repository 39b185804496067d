"""Gemm and MatMul against onnxruntime: transposes, alpha/beta, C broadcasting, batched and 1-D MatMul, fusion."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(1)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_transposes(trans_a: int, trans_b: int) -> None:
    a = _rand(5, 3) if trans_a else _rand(3, 5)
    b = _rand(4, 5) if trans_b else _rand(5, 4)
    model = node_model("Gemm", {"a": a}, initializers={"b": b, "c": _rand(4)}, transA=trans_a, transB=trans_b)
    assert_matches(model, {"a": a})


@pytest.mark.parametrize("c_shape", [(), (1,), (6,), (3, 1), (1, 6), (3, 6)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.0)])
def test_gemm_bias_broadcast_alpha_beta(c_shape: tuple[int, ...], alpha: float, beta: float) -> None:
    a, b, c = _rand(3, 4), _rand(4, 6), _rand(*c_shape)
    model = node_model("Gemm", {"a": a, "b": b, "c": c}, alpha=alpha, beta=beta)
    assert_matches(model, {"a": a, "b": b, "c": c})


def test_gemm_without_c_opset13() -> None:
    a, b = _rand(2, 7), _rand(3, 7)
    model = node_model("Gemm", {"a": a, "b": b}, opset=13, transB=1)
    assert_matches(model, {"a": a, "b": b})


def test_gemm_legacy_broadcast_attribute() -> None:
    a, b = _rand(3, 4), _rand(4, 5)
    for opset in (6, 7):
        attrs = {"broadcast": 1} if opset == 6 else {}
        model = node_model("Gemm", {"a": a}, opset=opset, initializers={"b": b, "c": _rand(5)}, **attrs)
        # onnxruntime has no Gemm-6 kernel; onnx's reference evaluator does.
        assert_matches(model, {"a": a}, oracle="reference" if opset == 6 else "ort")


def test_gemm_legacy_broadcast_zero_needs_full_c() -> None:
    a, b = _rand(3, 4), _rand(4, 5)
    model = node_model("Gemm", {"a": a}, opset=6, initializers={"b": b, "c": _rand(5)}, broadcast=0)
    with pytest.raises(rt.ShapeError, match="broadcast=0"):
        rt.Core(compile_threads=1).compile_model(model)


def test_gemm_inner_dimension_mismatch_is_a_shape_error() -> None:
    a, b = _rand(3, 4), _rand(5, 6)
    model = node_model("Gemm", {"a": a}, initializers={"b": b})
    with pytest.raises(rt.ShapeError, match="inner dimensions"):
        rt.Core(compile_threads=1).compile_model(model)


@pytest.mark.parametrize(
    "sa,sb",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),  # folded into one GEMM
        ((2, 1, 3, 4), (1, 5, 4, 6)),  # broadcast batch
        ((2, 3, 4), (2, 4, 5)),
        ((4,), (2, 4, 3)),  # 1-D left operand
        ((2, 3, 4), (4,)),  # 1-D right operand
        ((4,), (4,)),
        ((1, 4), (4, 1)),
    ],
)
def test_matmul_shapes(sa: tuple[int, ...], sb: tuple[int, ...]) -> None:
    a, b = _rand(*sa), _rand(*sb)
    assert_matches(node_model("MatMul", {"a": a, "b": b}), {"a": a, "b": b})
    assert_matches(node_model("MatMul", {"a": a}, initializers={"b": b}), {"a": a})


def test_matmul_int32_and_float64() -> None:
    a = RNG.integers(-5, 5, (2, 3, 4)).astype(np.int32)
    b = RNG.integers(-5, 5, (4, 2)).astype(np.int32)
    assert_matches(node_model("MatMul", {"a": a, "b": b}), {"a": a, "b": b})
    a64, b64 = _rand(3, 4).astype(np.float64), _rand(4, 2).astype(np.float64)
    assert_matches(node_model("MatMul", {"a": a64, "b": b64}), {"a": a64, "b": b64})


def test_matmul_mismatch_is_a_shape_error() -> None:
    a, b = _rand(2, 3, 4), _rand(5, 6)
    model = node_model("MatMul", {"a": a}, initializers={"b": b})
    with pytest.raises(rt.ShapeError, match="inner dimensions"):
        rt.Core(compile_threads=1).compile_model(model)


def _with_relu(op: str, x: np.ndarray, w: np.ndarray, **attrs: object) -> onnx.ModelProto:
    nodes = [helper.make_node(op, ["x", "w"], ["t"], **attrs), helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(
        nodes, "fused", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op,x,w", [("Gemm", _rand(3, 4), _rand(4, 5)), ("MatMul", _rand(2, 3, 4), _rand(4, 5))])
def test_activation_is_fused(op: str, x: np.ndarray, w: np.ndarray) -> None:
    model = _with_relu(op, x, w)
    compiled = rt.Core(compile_threads=1).compile_model(model)
    assert compiled.pass_stats.get("fused_activations") == 1
    assert [s["op_type"] for s in compiled.describe_plan()] == [op]
    assert_matches(model, {"x": x})
