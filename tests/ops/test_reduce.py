"""Reductions and Einsum against onnxruntime in every memory mode."""

from __future__ import annotations

import numpy as np
import pytest

import runtime as rt

from .oracle import assert_matches, node_model, run_runtime

RNG = np.random.default_rng(3)
OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
AXES = [None, [1], [-1], [0, 2], [2, 0, 1]]


def _positive(*shape: int) -> np.ndarray:
    # Positive data keeps ReduceLogSum finite and ReduceProd well scaled.
    return RNG.uniform(0.5, 1.5, shape).astype(np.float32)


def _model(op: str, x: np.ndarray, axes: list[int] | None, opset: int, **kw: int):
    new_style = opset >= (13 if op == "ReduceSum" else 18)
    if new_style:
        inits = {} if axes is None else {"axes": np.array(axes, np.int64)}
        return node_model(op, {"x": x}, opset=opset, initializers=inits, **kw)
    return node_model(op, {"x": x}, opset=opset, **kw, **({} if axes is None else {"axes": axes}))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [13, 18])
def test_reduce(op: str, axes: list[int] | None, keepdims: int, opset: int) -> None:
    x = _positive(2, 3, 4)
    assert_matches(_model(op, x, axes, opset, keepdims=keepdims), {"x": x})


@pytest.mark.parametrize("op", OPS)
def test_reduce_noop_with_empty_axes(op: str) -> None:
    x = _positive(2, 3)
    model = _model(op, x, None, 18, noop_with_empty_axes=1)
    assert_matches(model, {"x": x}, oracle="reference")
    steps = rt.Core().compile_model(model).describe_plan()
    pure = op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd")
    assert (steps == []) is pure  # pure reductions become views; composite ones keep their elementwise part


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # onnx's reference warns on the empty mean
@pytest.mark.parametrize("op", OPS)
def test_reduce_over_empty_set(op: str) -> None:
    x = np.zeros((2, 0, 3), np.float32)
    assert_matches(_model(op, x, [1], 18, keepdims=1), {"x": x}, oracle="reference")
    assert_matches(_model(op, x, [2], 18, keepdims=0), {"x": x}, oracle="reference")


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean", "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_integers(op: str, dtype: type) -> None:
    x = RNG.integers(-7, 8, (3, 4, 2)).astype(dtype)
    assert_matches(_model(op, x, [1], 18, keepdims=0), {"x": x})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_float16(op: str) -> None:
    x = _positive(4, 64).astype(np.float16)
    assert_matches(_model(op, x, [1], 18, keepdims=0), {"x": x}, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_bool(op: str) -> None:
    x = RNG.random((3, 4)) < 0.3
    model = _model(op, x, [1], 20, keepdims=1)
    assert_matches(model, {"x": x}, oracle="reference")


def test_reduce_log_sum_exp_is_stable_for_large_inputs() -> None:
    x = np.array([[1000.0, 1000.0], [-1000.0, -np.inf]], np.float32)
    (y,) = run_runtime(_model("ReduceLogSumExp", x, [1], 18, keepdims=0), {"x": x})
    np.testing.assert_allclose(y, [1000 + np.log(2), -1000], rtol=1e-6)


def test_reduce_axes_from_graph_input_are_planned_per_value() -> None:
    x = _positive(2, 3)
    model = node_model("ReduceSum", {"x": x, "axes": np.array([1], np.int64)}, opset=13)
    compiled = rt.Core().compile_model(model)
    assert compiled.static_program is None  # the axes decide the output shape: planned per value
    for axis in (1, 0, 1):
        out = compiled.infer({"x": x, "axes": np.array([axis], np.int64)})["y"]
        np.testing.assert_allclose(out, x.sum(axis=axis, keepdims=True), rtol=1e-6)
    assert compiled.value_inputs == {"axes"}


# ----------------------------------------------------------------------- Einsum


@pytest.mark.parametrize(
    "equation,shapes",
    [
        ("ij,jk->ik", [(3, 4), (4, 5)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ij->ji", [(3, 4)]),
        ("ii->i", [(4, 4)]),
        ("bii->bi", [(2, 3, 3)]),
        ("i,i", [(5,), (5,)]),
        ("ij", [(3, 4)]),
        ("ji", [(3, 4)]),
        ("...ij,...jk->...ik", [(2, 1, 3, 4), (2, 5, 4, 2)]),
        ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
        ("ij->", [(3, 4)]),
        ("i,j->ij", [(3,), (4,)]),
        ("b h i d, b h j d -> b h i j", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ],
)
def test_einsum(equation: str, shapes: list[tuple]) -> None:
    feeds = {f"x{i}": RNG.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    assert_matches(node_model("Einsum", feeds, opset=12, equation=equation), feeds)


@pytest.mark.parametrize("equation,shapes", [("ij,jk->ik", [(3, 4), (5, 6)]), ("ij->k", [(2, 2)]), ("ijk", [(2, 2)])])
def test_einsum_bad_equation_is_a_shape_error(equation: str, shapes: list[tuple]) -> None:
    feeds = {f"x{i}": np.zeros(s, np.float32) for i, s in enumerate(shapes)}
    model = node_model("Einsum", feeds, opset=12, equation=equation)
    with pytest.raises(rt.ShapeError):
        rt.Core().compile_model(model)
