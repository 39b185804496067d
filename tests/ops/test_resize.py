"""Resize and Upsample against onnxruntime, and onnx's own Resize cases with scales/sizes frozen.

onnx's node cases feed scales/sizes/roi as graph inputs, which makes the output shape
data-dependent (unsupported, see tests/conformance/xfail_nn.py). ``run_frozen_case``
turns every input but the data into an initializer, so those cases still check the numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model

RNG = np.random.default_rng(6)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    ONNX_CASES = {c.name: c for c in collect_testcases(None)}


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def run_frozen_case(name: str) -> None:
    """Run onnx node case ``name`` with all inputs after the first frozen as initializers, in every mode."""
    case = ONNX_CASES[name]
    for inputs, outputs in case.data_sets:
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        graph_inputs = list(model.graph.input)
        arrays = [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v) for v in inputs]
        for vi, arr in zip(graph_inputs[1:], arrays[1:]):
            model.graph.initializer.append(numpy_helper.from_array(arr, vi.name))
        del model.graph.input[1:]
        for mode in rt.MEMORY_MODES:
            compiled = rt.Core(compile_threads=1).compile_model(model, memory_mode=mode)
            got = compiled.infer({graph_inputs[0].name: arrays[0]})
            for vi, expected in zip(model.graph.output, outputs):
                expected = numpy_helper.to_array(expected) if isinstance(expected, onnx.TensorProto) else expected
                actual = got[vi.name]
                assert actual.shape == expected.shape, (mode, actual.shape, expected.shape)
                np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol, err_msg=mode)


FROZEN = sorted(n for n in ONNX_CASES if n.startswith("test_resize_") or n == "test_upsample_nearest")


@pytest.mark.parametrize("name", FROZEN)
def test_onnx_cases_with_frozen_scales(name: str) -> None:
    run_frozen_case(name)


def _resize(x: np.ndarray, *, scales: list[float] | None = None, sizes: list[int] | None = None, opset: int = 13,
            **attrs: object) -> onnx.ModelProto:
    inits: dict[str, np.ndarray] = {"roi": np.zeros(0, np.float32)}
    if scales is not None:
        inits["scales"] = np.array(scales, np.float32)
    else:
        inits["scales"] = np.zeros(0, np.float32)
        inits["sizes"] = np.array(sizes, np.int64)
    return node_model("Resize", {"x": x}, opset=opset, initializers=inits, **attrs)


@pytest.mark.parametrize("coord", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_upsample(coord: str, nearest_mode: str) -> None:
    x = _rand(1, 2, 4, 5)
    model = _resize(x, scales=[1, 1, 2, 3], mode="nearest", coordinate_transformation_mode=coord,
                    nearest_mode=nearest_mode)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 0.5, 0.5], [1, 1, 1.5, 0.75]])
def test_linear_and_cubic(mode: str, coord: str, scales: list[float]) -> None:
    x = _rand(2, 3, 8, 8)
    model = _resize(x, scales=scales, mode=mode, coordinate_transformation_mode=coord)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_sizes_input(mode: str) -> None:
    x = _rand(1, 3, 6, 7)
    assert_matches(_resize(x, sizes=[1, 3, 13, 5], mode=mode), {"x": x})


def test_cubic_exclude_outside_and_coeff() -> None:
    x = _rand(1, 1, 6, 6)
    model = _resize(x, scales=[1, 1, 1.5, 2], mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1)
    assert_matches(model, {"x": x})


def test_axes_opset18() -> None:
    x = _rand(2, 3, 4, 5)
    model = node_model("Resize", {"x": x, "": np.zeros(0, np.float32)}, opset=18,
                       initializers={"scales": np.array([2.0, 3.0], np.float32)}, axes=[3, 2], mode="linear")
    assert_matches(model, {"x": x})


def test_resize_1d_and_5d() -> None:
    x1 = _rand(2, 3, 7)
    assert_matches(_resize(x1, scales=[1, 1, 2], mode="linear"), {"x": x1})
    x5 = _rand(1, 2, 3, 4, 5)
    assert_matches(_resize(x5, scales=[1, 1, 2, 2, 2], mode="nearest"), {"x": x5})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scale", [2.0, 3.0, 1.5, 0.5])
def test_resize_opset10_and_upsample(mode: str, scale: float) -> None:
    x = _rand(1, 2, 4, 6)
    scales = np.array([1, 1, scale, scale], np.float32)
    assert_matches(node_model("Resize", {"x": x}, opset=10, initializers={"scales": scales}, mode=mode), {"x": x})
    if scale >= 1:  # onnxruntime's Upsample refuses shrinking
        assert_matches(node_model("Upsample", {"x": x}, opset=9, initializers={"scales": scales}, mode=mode), {"x": x})
        assert_matches(node_model("Upsample", {"x": x}, opset=7, scales=[float(s) for s in scales], mode=mode),
                       {"x": x})


def test_integer_factor_nearest_is_one_copy_without_scratch() -> None:
    x = _rand(1, 4, 5, 6)
    model = _resize(x, scales=[1, 1, 2, 2], mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")
    step = rt.Core(compile_threads=1).compile_model(model).describe_plan()[0]
    assert step["scratch"] == []
    assert_matches(model, {"x": x})


def test_uint8_nearest() -> None:
    x = RNG.integers(0, 255, (1, 3, 4, 4)).astype(np.uint8)
    assert_matches(_resize(x, scales=[1, 1, 2, 1.5], mode="nearest"), {"x": x})


def test_scales_and_sizes_together_is_a_shape_error() -> None:
    x = _rand(1, 1, 2, 2)
    model = node_model("Resize", {"x": x}, opset=13, initializers={
        "roi": np.zeros(0, np.float32), "scales": np.ones(4, np.float32), "sizes": np.array([1, 1, 2, 2], np.int64)})
    with pytest.raises(rt.ShapeError, match="exactly one"):
        rt.Core(compile_threads=1).compile_model(model)


def test_unknown_mode_is_a_shape_error() -> None:
    x = _rand(1, 1, 2, 2)
    with pytest.raises(rt.ShapeError, match="mode"):
        rt.Core(compile_threads=1).compile_model(_resize(x, scales=[1, 1, 2, 2], mode="bicubic"))


def test_sizes_computed_from_a_shape() -> None:
    """PyTorch's interpolate(size=other.shape[2:]) export: Shape -> Slice -> Concat folds at plan time."""
    x, ref = _rand(1, 3, 5, 7), _rand(1, 3, 9, 11)
    nodes = [
        helper.make_node("Shape", ["ref"], ["s"]),
        helper.make_node("Slice", ["s", "start", "end"], ["hw"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             (("start", [2]), ("end", [4]), ("nc", [1, 3]))]
    graph = helper.make_graph(
        nodes, "resize_like", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in
                               (("x", x), ("ref", ref))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert_matches(model, {"x": x, "ref": ref})
