"""BatchNormalization, InstanceNormalization, LayerNormalization and LRN against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(3)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _bn_params(c: int) -> dict[str, np.ndarray]:
    return {"scale": _rand(c), "bias": _rand(c), "mean": _rand(c), "var": np.abs(_rand(c)) + 0.1}


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 4)])
def test_batchnorm_inference(opset: int, shape: tuple[int, ...]) -> None:
    x = _rand(*shape)
    model = node_model("BatchNormalization", {"x": x}, opset=opset, initializers=_bn_params(shape[1]), epsilon=1e-3)
    assert_matches(model, {"x": x})


def test_batchnorm_parameters_as_inputs() -> None:
    x = _rand(2, 4, 3, 3)
    feeds = {"x": x, **_bn_params(4)}
    assert_matches(node_model("BatchNormalization", feeds, opset=15), feeds)


def test_batchnorm_legacy_spatial_0() -> None:
    x = _rand(2, 3, 4)
    p = {"scale": _rand(3, 4), "bias": _rand(3, 4), "mean": _rand(3, 4), "var": np.abs(_rand(3, 4)) + 0.1}
    model = node_model("BatchNormalization", {"x": x}, opset=7, initializers=p, spatial=0)
    y = rt.Core(compile_threads=1).compile_model(model).infer({"x": x})["y"]
    expected = (x - p["mean"]) / np.sqrt(p["var"] + 1e-5) * p["scale"] + p["bias"]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_training_mode_is_refused() -> None:
    x = _rand(2, 3, 4)
    model = node_model("BatchNormalization", {"x": x}, ["y", "m", "v"], opset=15, initializers=_bn_params(3),
                       training_mode=1)
    with pytest.raises(rt.UnsupportedOperatorError, match="training_mode=1"):
        rt.Core(compile_threads=1).compile_model(model)


def test_batchnorm_legacy_training_outputs_are_refused() -> None:
    x = _rand(2, 3, 4)
    model = node_model("BatchNormalization", {"x": x}, ["y", "m", "v"], opset=9, initializers=_bn_params(3))
    with pytest.raises(rt.UnsupportedOperatorError, match="training mode"):
        rt.Core(compile_threads=1).compile_model(model)


def test_batchnorm_bad_parameter_shape() -> None:
    x = _rand(2, 3, 4)
    p = _bn_params(3)
    p["var"] = np.ones(4, np.float32)
    with pytest.raises(rt.ShapeError, match="should be"):
        rt.Core(compile_threads=1).compile_model(node_model("BatchNormalization", {"x": x}, opset=15, initializers=p))


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 4, 5, 6), (1, 2, 3, 4, 5)])
def test_instance_norm(shape: tuple[int, ...]) -> None:
    x = _rand(*shape) * 3 + 1
    c = shape[1]
    model = node_model("InstanceNormalization", {"x": x}, initializers={"s": _rand(c), "b": _rand(c)}, epsilon=1e-4)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(axis: int, with_bias: bool) -> None:
    x = _rand(2, 3, 8) * 2 + 0.5
    norm_shape = x.shape[axis:]
    inits = {"scale": _rand(*norm_shape)}
    if with_bias:
        inits["bias"] = _rand(*norm_shape)
    model = node_model("LayerNormalization", {"x": x}, ["y", "mean", "inv"], initializers=inits, axis=axis)
    assert_matches(model, {"x": x})


def test_layer_norm_only_y_and_broadcast_scale() -> None:
    x = _rand(4, 6, 16)
    model = node_model("LayerNormalization", {"x": x}, initializers={"scale": _rand(16), "bias": _rand(16)})
    assert_matches(model, {"x": x})


def test_layer_norm_float16_stashes_in_float32() -> None:
    x = _rand(3, 32).astype(np.float16)
    inits = {"scale": _rand(32).astype(np.float16), "bias": _rand(32).astype(np.float16)}
    model = node_model("LayerNormalization", {"x": x}, ["y", "mean", "inv"], initializers=inits)
    y, mean, inv = (rt.Core(compile_threads=1).compile_model(model).infer({"x": x})[k] for k in ("y", "mean", "inv"))
    assert y.dtype == np.float16 and mean.dtype == np.float32 and inv.dtype == np.float32
    x32 = x.astype(np.float32)
    m = x32.mean(-1, keepdims=True)
    istd = 1 / np.sqrt(((x32 - m) ** 2).mean(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(mean, m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv, istd, rtol=1e-4)
    expected = (x32 - m) * istd * inits["scale"].astype(np.float32) + inits["bias"].astype(np.float32)
    np.testing.assert_allclose(y.astype(np.float32), expected, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn(size: int) -> None:
    x = _rand(2, 7, 4, 5)
    model = node_model("LRN", {"x": x}, size=size, alpha=1e-2, beta=0.6, bias=2.0)
    if size % 2:
        assert_matches(model, {"x": x})
        return
    # onnxruntime accepts odd sizes only (and onnx's reference LRN loops over the batch
    # axis instead of channels), so even sizes are checked against the spec's formula.
    c = x.shape[1]
    sq = np.stack([(x[:, max(0, i - (size - 1) // 2): min(c - 1, i + -(-(size - 1) // 2)) + 1] ** 2).sum(1)
                   for i in range(c)], axis=1)
    expected = x / (2.0 + 1e-2 / size * sq) ** 0.6
    for mode in rt.MEMORY_MODES:
        y = rt.Core(compile_threads=1).compile_model(model, memory_mode=mode).infer({"x": x})["y"]
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_lrn_defaults() -> None:
    x = _rand(1, 3, 5, 5)
    assert_matches(node_model("LRN", {"x": x}, size=3), {"x": x})


def _after_neg(op: str, x: np.ndarray, inits: dict[str, np.ndarray], opset: int = 17,
               **attrs: object) -> onnx.ModelProto:
    nodes = [helper.make_node("Neg", ["x"], ["t"]), helper.make_node(op, ["t", *inits], ["y"], **attrs)]
    graph = helper.make_graph(nodes, "inplace", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op", ["BatchNormalization", "InstanceNormalization", "LayerNormalization"])
def test_in_place_over_a_dying_input(op: str) -> None:
    """After Neg, the input dies at the op: reuse/arena run it in place over Neg's buffer."""
    x = _rand(2, 4, 3, 5)
    inits = {"BatchNormalization": _bn_params(4), "InstanceNormalization": {"s": _rand(4), "b": _rand(4)},
             "LayerNormalization": {"s": _rand(5), "b": _rand(5)}}[op]
    model = _after_neg(op, x, inits)
    assert_matches(model, {"x": x})
    compiled = rt.Core(compile_threads=1).compile_model(model, memory_mode="reuse")
    compiled.infer({"x": x})
    plan = compiled.current_plan()
    assert plan is not None and plan[1].inplace_pairs == 1
