"""Shape kernels against onnxruntime (or onnx's reference for old opsets), plus plan-time folding.

Reshape and friends must be views (no step in the plan); Shape/Size/Constant chains on a
graph input must fold away at plan time; shape inputs that only data could decide must
be refused with a ShapeError that says so.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model, run_runtime

RNG = np.random.default_rng(0)


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def _steps(model: onnx.ModelProto) -> list[str]:
    return [s["op_type"] for s in rt.Core(compile_threads=1).compile_model(model).describe_plan()]


# ---------------------------------------------------------------------- views


@pytest.mark.parametrize(
    "in_shape,shape,allowzero",
    [
        ((2, 3, 4), (4, 6), 0),
        ((2, 3, 4), (-1,), 0),
        ((2, 3, 4), (0, -1), 0),
        ((2, 3, 4), (0, 0, 2, 2), 0),
        ((2, 3, 4), (-1, 2, 0), 0),
        ((2, 0, 4), (0, 4, -1), 0),
        ((2, 0, 4), (0, 8), 1),
        ((6,), (1, 2, 1, 3), 0),
    ],
)
def test_reshape(in_shape: tuple, shape: tuple, allowzero: int) -> None:
    x = _rand(*in_shape)
    model = node_model("Reshape", {"x": x}, initializers={"shape": _i64(*shape)}, opset=14, allowzero=allowzero)
    assert_matches(model, {"x": x})
    assert _steps(model) == []  # a view: no step


def test_reshape_legacy_attribute_and_opset5() -> None:
    x = _rand(2, 3, 4)
    legacy = node_model("Reshape", {"x": x}, opset=1, shape=[3, -1])  # no oracle implements Reshape-1
    for mode in rt.MEMORY_MODES:
        np.testing.assert_array_equal(run_runtime(legacy, {"x": x}, mode)[0], x.reshape(3, 8))
    assert_matches(node_model("Reshape", {"x": x}, initializers={"shape": _i64(0, 12)}, opset=5), {"x": x})


@pytest.mark.parametrize("shape", [(5, 7), (7,), (3, 0), (2, 5), (-1, -1)])
def test_reshape_bad_target_is_a_shape_error(shape: tuple) -> None:
    x = _rand(2, 3, 4)
    model = node_model("Reshape", {"x": x}, initializers={"shape": _i64(*shape)}, opset=14)
    with pytest.raises(rt.ShapeError, match="Reshape"):
        rt.Core().compile_model(model)


def test_reshape_shape_from_graph_input_is_planned_per_value() -> None:
    x = _rand(2, 3)
    model = node_model("Reshape", {"x": x, "shape": _i64(3, 2)}, opset=14)
    compiled = rt.Core().compile_model(model, memory_mode="arena")
    for shape in ((3, 2), (6, 1), (3, 2)):
        out = compiled.infer({"x": x, "shape": _i64(*shape)})["y"]
        np.testing.assert_array_equal(out, x.reshape(shape))
    assert compiled.value_inputs == {"shape"} and "x" not in compiled.value_inputs


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis: int) -> None:
    x = _rand(2, 3, 4)
    model = node_model("Flatten", {"x": x}, opset=13, axis=axis)
    assert_matches(model, {"x": x})
    assert _steps(model) == []


@pytest.mark.parametrize("axes", [None, [1], [-1], [1, 3]])
def test_squeeze(axes: list[int] | None) -> None:
    x = _rand(2, 1, 3, 1)
    inits = {} if axes is None else {"axes": _i64(*axes)}
    assert_matches(node_model("Squeeze", {"x": x}, initializers=inits, opset=13), {"x": x})
    kw = {} if axes is None else {"axes": axes}
    assert_matches(node_model("Squeeze", {"x": x}, opset=11, **kw), {"x": x})


def test_squeeze_non_unit_axis_is_refused() -> None:
    x = _rand(2, 3)
    with pytest.raises(rt.ShapeError, match="cannot squeeze"):
        rt.Core().compile_model(node_model("Squeeze", {"x": x}, initializers={"axes": _i64(0)}, opset=13))


@pytest.mark.parametrize("axes", [[0], [-1], [1, 3], [3, 0], [0, 1, 2]])
def test_unsqueeze(axes: list[int]) -> None:
    x = _rand(2, 3)
    model = node_model("Unsqueeze", {"x": x}, initializers={"axes": _i64(*axes)}, opset=13)
    assert_matches(model, {"x": x})
    assert _steps(model) == []
    assert_matches(node_model("Unsqueeze", {"x": x}, opset=11, axes=axes), {"x": x})


def test_identity_and_dropout_are_views() -> None:
    x = _rand(3, 4)
    assert_matches(node_model("Identity", {"x": x}), {"x": x})
    model = node_model("Dropout", {"x": x}, opset=13)
    assert_matches(model, {"x": x})
    # The removal pass drops them; with passes off they are still views, not steps.
    compiled = rt.Core().compile_model(model, disable_passes={"remove_identity"})
    assert compiled.describe_plan() == []
    np.testing.assert_array_equal(compiled.infer({"x": x})["y"], x)


@pytest.mark.parametrize("opset,mask_dtype", [(7, np.float32), (10, np.bool_), (13, np.bool_)])
def test_dropout_mask_is_all_ones(opset: int, mask_dtype: type) -> None:
    x = _rand(3, 4)
    kw = {"ratio": 0.3} if opset < 12 else {}  # from opset 12 ratio is an input
    model = node_model("Dropout", {"x": x}, ("y", "mask"), opset=opset, **kw)
    assert_matches(model, {"x": x}, oracle="reference")
    y, mask = run_runtime(model, {"x": x})
    assert mask.dtype == mask_dtype and mask.all()
    assert _steps(model) == ["Dropout"]  # only the mask is written


def test_dropout_training_mode_inputs() -> None:
    x = _rand(3, 4)
    off = node_model("Dropout", {"x": x}, ("y", "mask"), opset=13,
                     initializers={"ratio": np.array(0.5, np.float32), "training_mode": np.array(False)})
    assert_matches(off, {"x": x})
    zero = node_model("Dropout", {"x": x}, ("y", "mask"), opset=13,
                      initializers={"ratio": np.array(0.0, np.float32), "training_mode": np.array(True)})
    assert_matches(zero, {"x": x}, oracle="reference")
    train = node_model("Dropout", {"x": x}, opset=13,
                       initializers={"ratio": np.array(0.5, np.float32), "training_mode": np.array(True)})
    with pytest.raises(rt.ShapeError, match="training-mode"):
        rt.Core().compile_model(train, disable_passes={"remove_identity"})


def test_dropout_training_mode_fed_at_run_time() -> None:
    x = _rand(3, 4)
    feeds = {"x": x, "ratio": np.array(0.5, np.float32), "training_mode": np.array(False)}
    model = node_model("Dropout", feeds, ("y", "mask"), opset=13)
    assert_matches(model, feeds)
    compiled = rt.Core().compile_model(model)
    assert [s["op_type"] for s in compiled.describe_plan()] == ["Dropout"]  # the mode is checked per run
    y = compiled.infer({**feeds, "ratio": np.array(0.0, np.float32), "training_mode": np.array(True)})["y"]
    np.testing.assert_array_equal(y, x)  # training with ratio 0 drops nothing
    with pytest.raises(rt.KernelError, match="training-mode"):
        compiled.infer({**feeds, "training_mode": np.array(True)})


# --------------------------------------------------------- plan-time values


@pytest.mark.parametrize(
    "kw", [{}, {"start": 1}, {"end": -1}, {"start": -2, "end": 3}, {"start": 5}, {"start": 2, "end": 1}]
)
def test_shape_start_end(kw: dict) -> None:
    x = _rand(2, 3, 4, 5)
    model = node_model("Shape", {"x": x}, opset=15, **kw)
    assert_matches(model, {"x": x})
    assert _steps(model) == []


def test_size_is_a_scalar_known_at_plan_time() -> None:
    x = _rand(2, 3, 4)
    model = node_model("Size", {"x": x})
    assert_matches(model, {"x": x})
    (y,) = run_runtime(model, {"x": x})
    assert y.shape == () and y == 24
    assert _steps(model) == []


@pytest.mark.parametrize(
    "attr,expected",
    [
        ({"value": numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3))},
         np.arange(6, dtype=np.float32).reshape(2, 3)),
        ({"value_float": 1.5}, np.array(1.5, np.float32)),
        ({"value_floats": [1.0, 2.0]}, np.array([1.0, 2.0], np.float32)),
        ({"value_int": 7}, np.array(7, np.int64)),
        ({"value_ints": [1, 2, 3]}, np.array([1, 2, 3], np.int64)),
    ],
)
def test_constant(attr: dict, expected: np.ndarray) -> None:
    model = node_model("Constant", {}, opset=13, **attr)
    assert_matches(model, {})
    (y,) = run_runtime(model, {})
    assert y.dtype == expected.dtype and y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)


def test_constant_string_is_refused_clearly() -> None:
    model = node_model("Constant", {}, opset=13, value_string="hello")
    with pytest.raises(rt.Error, match="STRING is not supported"):  # the typed output is refused on load
        rt.Core().compile_model(model)
    model.graph.output[0].ClearField("type")  # untyped: the kernel itself refuses
    with pytest.raises(rt.ShapeError, match="string value is not supported"):
        rt.Core().compile_model(model)


@pytest.mark.parametrize(
    "shape,value",
    [((2, 3), None), ((4,), np.array([3], np.int32)), ((0, 2), np.array([1.5], np.float32)), ((), None)],
)
def test_constant_of_shape(shape: tuple, value: np.ndarray | None) -> None:
    kw = {} if value is None else {"value": numpy_helper.from_array(value)}
    model = node_model("ConstantOfShape", {}, initializers={"shape": _i64(*shape)}, opset=9, **kw)
    assert_matches(model, {})


def _chain_model() -> onnx.ModelProto:
    """x[N,C,H,W] -> Reshape to [N, C*H*W] with the shape computed from Shape(x)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(_i64(0), "axes0"), numpy_helper.from_array(_i64(-1), "minus1")]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize("batch", [1, 3])
def test_shape_chain_folds_at_plan_time(batch: int) -> None:
    model = _chain_model()
    x = _rand(batch, 3, 4, 5)
    assert_matches(model, {"x": x})
    compiled = rt.Core(compile_threads=1).compile_model(model)
    y = compiled.infer({"x": x})["y"]
    assert y.shape == (batch, 60)
    # Only Relu runs: Shape/Gather/Unsqueeze/Concat are plan-time values and Reshape is a view.
    assert [s["op_type"] for s in compiled.describe_plan()] == ["Relu"]


def test_shape_chain_folds_with_static_input_in_constant_pass() -> None:
    model = _chain_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    compiled = rt.Core(compile_threads=1).compile_model(model)
    assert compiled.pass_stats.get("folded_nodes", 0) >= 4
    assert [s["op_type"] for s in compiled.describe_plan()] == ["Relu"]
    x = _rand(2, 3, 4, 5)
    np.testing.assert_array_equal(compiled.infer({"x": x})["y"], np.maximum(x.reshape(2, 60), 0))
