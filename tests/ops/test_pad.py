"""Pad against onnxruntime (and onnx's reference for what onnxruntime refuses), plus onnx's Pad cases frozen."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model
from .test_resize import run_frozen_case

RNG = np.random.default_rng(7)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _pad(x: np.ndarray, pads: list[int], opset: int = 13, value: float | None = None, axes: list[int] | None = None,
         **attrs: object) -> object:
    inits: dict[str, np.ndarray] = {"pads": np.array(pads, np.int64)}
    if value is not None or axes is not None:
        inits["value"] = np.array(0.0 if value is None else value, x.dtype)
    if axes is not None:
        inits["axes"] = np.array(axes, np.int64)
    return node_model("Pad", {"x": x}, opset=opset, initializers=inits, **attrs)


PADS_4D = [
    [0, 0, 1, 2, 0, 0, 2, 1],
    [0, 0, 3, 3, 0, 0, 3, 3],  # reflect-pad in style-transfer nets
    [0, 1, 0, 0, 0, 0, 1, 0],
]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", PADS_4D)
def test_pad_modes(mode: str, pads: list[int]) -> None:
    x = _rand(2, 3, 5, 6)
    assert_matches(_pad(x, pads, mode=mode), {"x": x})


def test_constant_value_and_negative_pads() -> None:
    x = _rand(2, 3, 5, 6)
    assert_matches(_pad(x, [0, 0, 2, -1, 0, -1, 1, 3], value=1.5), {"x": x})


def test_constant_value_fed_at_run_time() -> None:
    x, v = _rand(1, 2, 3, 3), np.array(-2.0, np.float32)
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"])
    graph = helper.make_graph(
        [node], "pad_v",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert_matches(model, {"x": x, "v": v})


def test_axes_opset18() -> None:
    x = _rand(2, 3, 4)
    assert_matches(_pad(x, [1, 2, 3, 0], opset=18, axes=[-1, 0], mode="edge"), {"x": x})


def test_wrap_opset19() -> None:
    x = _rand(1, 2, 4, 5)
    assert_matches(_pad(x, [0, 0, 2, 1, 0, 0, 1, 3], opset=19, mode="wrap"), {"x": x})


def test_pads_wider_than_the_input() -> None:
    # onnxruntime refuses reflect pads >= the axis; numpy (and onnx's reference) fold repeatedly.
    x = _rand(1, 1, 3, 2)
    for mode in ("reflect", "wrap", "edge"):
        assert_matches(_pad(x, [0, 0, 5, 4, 0, 0, 6, 3], opset=19, mode=mode), {"x": x}, oracle="reference")


def test_legacy_attribute_pads() -> None:
    x = _rand(2, 3, 4)
    assert_matches(node_model("Pad", {"x": x}, opset=2, pads=[0, 1, 2, 0, 2, 1], mode="reflect"), {"x": x})
    assert_matches(node_model("Pad", {"x": x}, opset=2, pads=[0, 1, 2, 0, 2, 1], value=3.0), {"x": x})
    model = node_model("Pad", {"x": x}, opset=1, paddings=[0, 1, 2, 0, 2, 1], value=3.0)
    expected = np.pad(x, [(0, 0), (1, 2), (2, 1)], constant_values=3.0)
    np.testing.assert_array_equal(rt.Core(compile_threads=1).compile_model(model).infer({"x": x})["y"], expected)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.float16])
def test_other_dtypes(dtype: type) -> None:
    x = (RNG.integers(0, 2, (3, 4)) if dtype != np.float16 else _rand(3, 4)).astype(dtype)
    assert_matches(_pad(x, [1, 0, 0, 2], opset=13, mode="constant"), {"x": x})
    assert_matches(_pad(x, [1, 0, 0, 2], opset=13, mode="edge"), {"x": x})


@pytest.mark.parametrize("name", ["test_constant_pad", "test_constant_pad_axes", "test_constant_pad_negative_axes",
                                  "test_edge_pad", "test_reflect_pad", "test_wrap_pad"])
def test_onnx_cases_with_frozen_pads(name: str) -> None:
    run_frozen_case(name)


def test_wrap_before_opset19_is_a_shape_error() -> None:
    x = _rand(2, 3)
    with pytest.raises(rt.ShapeError, match="wrap"):
        rt.Core(compile_threads=1).compile_model(_pad(x, [1, 1, 1, 1], opset=18, mode="wrap"))


def test_bad_pads_length_is_a_shape_error() -> None:
    x = _rand(2, 3)
    with pytest.raises(rt.ShapeError, match="entries"):
        rt.Core(compile_threads=1).compile_model(_pad(x, [1, 1, 1]))
