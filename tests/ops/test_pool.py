"""Pooling against onnxruntime: pads, strides, ceil_mode, dilations, auto_pad, Indices, Lp and Global forms."""

from __future__ import annotations

import numpy as np
import pytest

import runtime as rt

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(4)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


CASES_2D = [
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},  # ResNet stem
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "pads": [0, 1, 2, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [1, 2]},
]


@pytest.mark.parametrize("attrs", CASES_2D)
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_2d(op: str, attrs: dict) -> None:
    x = _rand(2, 3, 9, 10)
    if op == "AveragePool" and "dilations" in attrs:
        opset = 19
    else:
        opset = 17
    assert_matches(node_model(op, {"x": x}, opset=opset, **attrs), {"x": x})


@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_average_pool_count_include_pad(ceil_mode: int) -> None:
    x = _rand(1, 2, 7, 8)
    model = node_model("AveragePool", {"x": x}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                       count_include_pad=1, ceil_mode=ceil_mode)
    assert_matches(model, {"x": x})


def test_pool_1d_and_3d() -> None:
    x1 = _rand(2, 3, 11)
    for op in ("MaxPool", "AveragePool"):
        assert_matches(node_model(op, {"x": x1}, kernel_shape=[3], strides=[2], pads=[1, 1]), {"x": x1})
    x3 = _rand(1, 2, 5, 6, 7)
    for op in ("MaxPool", "AveragePool"):
        assert_matches(node_model(op, {"x": x3}, kernel_shape=[2, 3, 2], strides=[1, 2, 2]), {"x": x3})


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16, np.float64])
def test_max_pool_dtypes(dtype: type) -> None:
    x = (RNG.integers(0, 100, (1, 2, 6, 6)) if dtype in (np.uint8, np.int8) else _rand(1, 2, 6, 6)).astype(dtype)
    assert_matches(node_model("MaxPool", {"x": x}, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), {"x": x})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
])
def test_max_pool_indices(storage_order: int, attrs: dict) -> None:
    x = _rand(2, 3, 7, 8)
    model = node_model("MaxPool", {"x": x}, ["y", "i"], storage_order=storage_order, **attrs)
    assert_matches(model, {"x": x})


def test_max_pool_indices_with_ties_on_padding() -> None:
    # All-zero uint8 input: padding holds the same value as the data; indices must stay inside the input.
    x = np.zeros((1, 1, 4, 4), np.uint8)
    model = node_model("MaxPool", {"x": x}, ["y", "i"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    out = rt.Core(compile_threads=1).compile_model(model).infer({"x": x})
    np.testing.assert_array_equal(out["i"], [[[[0, 1], [4, 5]]]])


def test_max_pool_opset8_indices() -> None:
    x = _rand(1, 2, 6, 6)
    assert_matches(node_model("MaxPool", {"x": x}, ["y", "i"], opset=8, kernel_shape=[2, 2], strides=[2, 2]), {"x": x})


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p: int) -> None:
    x = _rand(2, 3, 8, 7)
    model = node_model("LpPool", {"x": x}, kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], p=p)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 4, 5, 6), (1, 2, 3, 4, 5)])
def test_global_pools(op: str, shape: tuple[int, ...]) -> None:
    x = _rand(*shape)
    assert_matches(node_model(op, {"x": x}), {"x": x})


def test_global_lp_pool_p3() -> None:
    x = _rand(2, 3, 4, 5)
    assert_matches(node_model("GlobalLpPool", {"x": x}, p=3), {"x": x})


def test_kernel_larger_than_input_is_a_shape_error() -> None:
    x = _rand(1, 1, 2, 2)
    with pytest.raises(rt.ShapeError, match="kernel extent"):
        rt.Core(compile_threads=1).compile_model(node_model("MaxPool", {"x": x}, kernel_shape=[3, 3]))


def test_kernel_rank_mismatch_is_a_shape_error() -> None:
    x = _rand(1, 1, 4, 4)
    with pytest.raises(rt.ShapeError, match="kernel_shape"):
        rt.Core(compile_threads=1).compile_model(node_model("AveragePool", {"x": x}, kernel_shape=[2]))


@pytest.mark.parametrize("op,opset,attrs", [
    ("MaxPool", 1, {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}),
    ("AveragePool", 1, {"kernel_shape": [3, 3], "strides": [2, 2]}),
    ("AveragePool", 7, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", 10, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("LpPool", 2, {"kernel_shape": [2, 2], "p": 3}),
    ("LpPool", 11, {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("GlobalLpPool", 2, {"p": 1}),
])
def test_older_opsets(op: str, opset: int, attrs: dict) -> None:
    x = _rand(1, 3, 6, 7)
    # onnxruntime has no AveragePool-1 kernel; onnx's reference evaluator does.
    oracle = "reference" if (op, opset) == ("AveragePool", 1) else "ort"
    assert_matches(node_model(op, {"x": x}, opset=opset, **attrs), {"x": x}, oracle=oracle)


def test_opset_gates_attributes() -> None:
    x = _rand(1, 1, 4, 4)
    model = node_model("MaxPool", {"x": x}, opset=7, kernel_shape=[2, 2], ceil_mode=1)  # ceil_mode is from opset 10
    with pytest.raises(rt.UnsupportedOperatorError, match="ceil_mode"):
        rt.Core(compile_threads=1).compile_model(model)
