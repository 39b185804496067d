"""Indexing kernels against onnxruntime in every memory mode: gathers, scatters, OneHot, TopK, ArgMax/ArgMin."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import runtime as rt

from .oracle import assert_matches, node_model, run_runtime
from .test_tensor import chain_model, inplace_pairs

RNG = np.random.default_rng(2)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------- Gather


@pytest.mark.parametrize(
    "axis,indices",
    [
        (0, np.array([0, 2, -1], np.int64)),
        (1, np.array([[1, 0], [3, -4]], np.int64)),
        (2, np.array(1, np.int64)),  # scalar index drops the axis
        (-1, np.array([4, 0, 4], np.int32)),
        (0, np.zeros((0,), np.int64)),
    ],
)
def test_gather(axis: int, indices: np.ndarray) -> None:
    x = _rand(3, 4, 5)
    assert_matches(node_model("Gather", {"x": x, "i": indices}, axis=axis), {"x": x, "i": indices})
    # As a constant, the indices still index at run time.
    assert_matches(node_model("Gather", {"x": x}, initializers={"i": indices}, axis=axis), {"x": x})


def test_gather_out_of_range_is_a_kernel_error() -> None:
    x = _rand(3, 4)
    model = node_model("Gather", {"x": x, "i": np.array([0, 1], np.int64)})
    compiled = rt.Core().compile_model(model)
    with pytest.raises(rt.KernelError, match="out of range"):
        compiled.infer({"x": x, "i": np.array([0, 3], np.int64)})


@pytest.mark.parametrize("passes_off", [(), ("fold_constants",)])
def test_gather_out_of_range_on_constants_fails_at_plan_time(passes_off: tuple) -> None:
    model = node_model("Gather", {}, initializers={"x": _rand(3), "i": np.array([5], np.int64)})
    with pytest.raises(rt.KernelError, match="Gather.*plan time.*out of range"):
        rt.Core().compile_model(model, disable_passes=passes_off)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis: int) -> None:
    x = _rand(4, 5)
    shape = [4, 5]
    shape[axis] = 3
    shape[1 - (axis % 2)] -= 1  # fewer rows/cols than data along the other axis
    idx = RNG.integers(-x.shape[axis], x.shape[axis], shape).astype(np.int64)
    assert_matches(node_model("GatherElements", {"x": x, "i": idx}, axis=axis), {"x": x, "i": idx})


@pytest.mark.parametrize(
    "data_shape,indices,batch_dims",
    [
        ((2, 2), [[0, 0], [1, 1]], 0),
        ((2, 2), [[1], [0]], 0),
        ((2, 2, 2), [[0, 1], [1, 0]], 0),
        ((2, 2, 2), [[[0, 1]], [[1, 0]]], 0),
        ((2, 2, 2), [[1], [0]], 1),
        ((2, 3, 4), [[[1, -1], [2, 0]], [[0, 0], [1, 3]]], 1),
    ],
)
def test_gather_nd(data_shape: tuple, indices: list, batch_dims: int) -> None:
    x = _rand(*data_shape)
    i = np.array(indices, np.int64)
    assert_matches(node_model("GatherND", {"x": x, "i": i}, opset=13, batch_dims=batch_dims), {"x": x, "i": i})


# ---------------------------------------------------------------------- Scatter


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements(reduction: str, axis: int) -> None:
    x = _rand(4, 5)
    shape = [2, 3]
    # Unique positions for "none" (duplicates are undefined); duplicates for the reductions.
    if reduction == "none":
        idx = np.stack([RNG.permutation(x.shape[axis])[:shape[axis]] for _ in range(shape[1 - axis])], axis=1 - axis)
    else:
        idx = RNG.integers(0, x.shape[axis], shape)
    idx = (idx - x.shape[axis] * (RNG.random(idx.shape) < 0.5)).astype(np.int64)  # some negative
    upd = _rand(*shape)
    model = node_model("ScatterElements", {"x": x, "i": idx, "u": upd}, opset=18, axis=axis, reduction=reduction)
    assert_matches(model, {"x": x, "i": idx, "u": upd}, oracle="reference")


def test_scatter_elements_runs_in_place_and_opset11() -> None:
    x, idx, upd = _rand(3, 3), np.array([[1, 0, 2], [0, 2, 1]], np.int64), _rand(2, 3)
    assert_matches(node_model("ScatterElements", {"x": x, "i": idx, "u": upd}, opset=11), {"x": x, "i": idx, "u": upd})
    assert_matches(node_model("Scatter", {"x": x, "i": idx, "u": upd}, opset=9), {"x": x, "i": idx, "u": upd})
    nodes = [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("ScatterElements", ["t", "i", "u"], ["y"])]
    model = chain_model(nodes, {"x": x, "i": idx, "u": upd}, opset=13)
    assert_matches(model, {"x": x, "i": idx, "u": upd})
    assert inplace_pairs(model) == 1


def test_scatter_reduction_refused_before_its_opset() -> None:
    x, idx, upd = _rand(3), np.array([0], np.int64), _rand(1)
    model = node_model("ScatterElements", {"x": x, "i": idx, "u": upd}, opset=16, reduction="max")
    with pytest.raises(rt.ShapeError, match="reduction 'max'"):
        rt.Core().compile_model(model)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction: str) -> None:
    x = _rand(4, 4, 4)
    idx = np.array([[0], [2], [0]] if reduction != "none" else [[0], [2]], np.int64)
    upd = _rand(len(idx), 4, 4)
    model = node_model("ScatterND", {"x": x, "i": idx, "u": upd}, opset=18, reduction=reduction)
    assert_matches(model, {"x": x, "i": idx, "u": upd}, oracle="reference")


def test_scatter_nd_element_indices() -> None:
    x = _rand(3, 4)
    idx = np.array([[0, 1], [2, -1], [1, 0]], np.int64)
    upd = _rand(3)
    assert_matches(node_model("ScatterND", {"x": x, "i": idx, "u": upd}, opset=13), {"x": x, "i": idx, "u": upd})


# ----------------------------------------------------------------------- OneHot


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_one_hot(axis: int) -> None:
    idx = np.array([[0, 3, -1], [9, -4, 2]], np.int64)  # 9 and -(depth+1) fall outside: all off
    values = np.array([-1.0, 2.5], np.float32)
    model = node_model("OneHot", {"i": idx}, opset=11, initializers={"depth": np.array(5, np.int64), "v": values},
                       axis=axis)
    assert_matches(model, {"i": idx}, oracle="reference")


def test_one_hot_float_depth_and_indices() -> None:
    idx = np.array([0.0, 2.7, 1.0], np.float32)
    model = node_model("OneHot", {"i": idx}, opset=11,
                       initializers={"depth": np.array([4.0], np.float32), "v": np.array([0, 1], np.int32)})
    (y,) = run_runtime(model, {"i": idx})
    np.testing.assert_array_equal(y, np.eye(4, dtype=np.int32)[[0, 2, 1]])


# ------------------------------------------------------------------ TopK/ArgMax


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.int32])
def test_top_k(largest: int, axis: int, dtype: type) -> None:
    # Few distinct values: many ties, which must resolve to the lower index.
    x = RNG.integers(0, 4, (5, 6)).astype(dtype)
    model = node_model("TopK", {"x": x}, ("v", "i"), opset=11, initializers={"k": np.array([3], np.int64)},
                       axis=axis, largest=largest)
    assert_matches(model, {"x": x}, oracle="reference")


def test_top_k_legacy_and_extreme_values() -> None:
    x = np.array([[np.iinfo(np.int64).min, 5, np.iinfo(np.int64).max, 5]], np.int64)
    model = node_model("TopK", {"x": x}, ("v", "i"), opset=1, k=3)
    v, i = run_runtime(model, {"x": x})
    np.testing.assert_array_equal(v, [[np.iinfo(np.int64).max, 5, 5]])
    np.testing.assert_array_equal(i, [[2, 1, 3]])
    f = _rand(3, 7)
    assert_matches(node_model("TopK", {"x": f}, ("v", "i"), opset=10, initializers={"k": np.array([7], np.int64)}),
                   {"x": f})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_arg_extremum(op: str, keepdims: int, last: int, axis: int) -> None:
    x = RNG.integers(0, 3, (3, 4, 5)).astype(np.float32)  # ties decide first vs last index
    model = node_model(op, {"x": x}, opset=13, axis=axis, keepdims=keepdims, select_last_index=last)
    assert_matches(model, {"x": x})
