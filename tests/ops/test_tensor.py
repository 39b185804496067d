"""Layout kernels against onnxruntime in every memory mode, in-place runs, and ONNX's
data-dependent conformance cases re-run with their shape inputs frozen as initializers."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt

from .oracle import assert_matches, node_model, run_runtime

RNG = np.random.default_rng(1)
I64_MAX = np.iinfo(np.int64).max


def _rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def chain_model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], out: str = "y",
                initializers: dict[str, np.ndarray] | None = None, opset: int = 17) -> onnx.ModelProto:
    """A small multi-node model; the output's type is inferred."""
    g_in = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "chain", g_in, [helper.make_tensor_value_info(out, TensorProto.UNDEFINED, None)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.graph.ClearField("output")
    model.graph.output.extend(inferred.graph.output)
    return model


def inplace_pairs(model: onnx.ModelProto, mode: str = "reuse") -> int:
    compiled = rt.Core(compile_threads=1).compile_model(model, memory_mode=mode)
    current = compiled.current_plan()
    assert current is not None
    return current[1].inplace_pairs


# ------------------------------------------------------------------ Concat/Split


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat(axis: int) -> None:
    xs = {}
    for i, n in enumerate((4, 1, 0)):  # an empty input along the axis is legal
        shape = [2, 3, 4]
        shape[axis] = n
        xs[f"x{i}"] = _rand(*shape)
    assert_matches(node_model("Concat", xs, axis=axis), xs)


def test_concat_of_constants_and_inputs() -> None:
    x = _rand(2, 3)
    model = node_model("Concat", {"x": x}, initializers={"c": _rand(1, 3)}, axis=0)
    assert_matches(model, {"x": x})


@pytest.mark.parametrize(
    "opset,n,kw,split",
    [
        (11, 3, {"axis": 1}, None),
        (11, 2, {"axis": -1, "split": [1, 4]}, None),
        (13, 3, {"axis": 1}, [2, 0, 4]),
        (13, 2, {"axis": 0}, None),
        (18, 4, {"axis": 1, "num_outputs": 4}, None),  # 6 -> 2, 2, 2, 0 (as onnxruntime and onnx do)
        (18, 3, {"axis": 2, "num_outputs": 3}, None),  # 5 -> 2, 2, 1
        (18, 3, {"axis": 1}, [1, 2, 3]),
    ],
)
def test_split(opset: int, n: int, kw: dict, split: list[int] | None) -> None:
    x = _rand(2, 6, 5)
    outs = [f"y{i}" for i in range(n)]
    inits = {} if split is None else {"split": _i64(*split)}
    model = node_model("Split", {"x": x}, outs, opset=opset, initializers=inits, **kw)
    assert_matches(model, {"x": x})


def test_split_with_an_omitted_output() -> None:
    x = _rand(4, 6)
    model = node_model("Split", {"x": x}, ("a", "", "c"), opset=13, axis=1)
    a, c = run_runtime(model, {"x": x})
    np.testing.assert_array_equal(a, x[:, :2])
    np.testing.assert_array_equal(c, x[:, 4:])


# ------------------------------------------------------------------------ Slice


@pytest.mark.parametrize(
    "starts,ends,axes,steps",
    [
        ([1, 0], [3, 10], [0, 1], [1, 2]),
        ([0], [-1], [1], None),
        ([-3], [I64_MAX], [-1], None),
        ([10], [-I64_MAX - 1], [2], [-1]),  # negative step, end clamped through index 0
        ([-1, 4], [0, 0], [1, 2], [-2, -1]),
        ([20], [30], [0], [1]),  # empty, start clamped
        ([-100], [100], [0], [3]),
        ([1, 1, 1], [2, 3, 4], None, None),
        ([5], [-100], [1], [-3]),
    ],
)
def test_slice(starts: list, ends: list, axes: list | None, steps: list | None) -> None:
    x = _rand(4, 5, 6)
    inits = {"starts": _i64(*starts), "ends": _i64(*ends)}
    if axes is not None:
        inits["axes"] = _i64(*axes)
    if steps is not None:
        if axes is None:
            inits["axes"] = _i64(*range(len(starts)))
        inits["steps"] = _i64(*steps)
    assert_matches(node_model("Slice", {"x": x}, opset=13, initializers=inits), {"x": x})


def test_slice_legacy_attributes() -> None:
    x = _rand(4, 5, 6)
    model = node_model("Slice", {"x": x}, opset=1, starts=[1, -2], ends=[1000, -1], axes=[0, 2])
    assert_matches(model, {"x": x}, oracle="reference")


def test_slice_zero_step_is_refused() -> None:
    x = _rand(4)
    inits = {"starts": _i64(0), "ends": _i64(3), "axes": _i64(0), "steps": _i64(0)}
    with pytest.raises(rt.ShapeError, match="step"):
        rt.Core().compile_model(node_model("Slice", {"x": x}, opset=13, initializers=inits))


# -------------------------------------------------------- Transpose/Expand/Tile


@pytest.mark.parametrize("perm", [None, [0, 2, 1, 3], [3, 1, 0, 2]])
def test_transpose(perm: list[int] | None) -> None:
    x = _rand(2, 3, 4, 5)
    kw = {} if perm is None else {"perm": perm}
    assert_matches(node_model("Transpose", {"x": x}, **kw), {"x": x})


@pytest.mark.parametrize("in_shape,shape", [((3, 1), (2, 3, 4)), ((1, 4), (3, 1)), ((2, 1, 3), (1,)), ((), (2, 2))])
def test_expand(in_shape: tuple, shape: tuple) -> None:
    x = _rand(*in_shape)
    assert_matches(node_model("Expand", {"x": x}, initializers={"shape": _i64(*shape)}), {"x": x})


@pytest.mark.parametrize("repeats", [(1, 1, 1), (2, 1, 3), (1, 0, 2)])
def test_tile(repeats: tuple) -> None:
    x = _rand(2, 3, 4)
    assert_matches(node_model("Tile", {"x": x}, initializers={"repeats": _i64(*repeats)}), {"x": x})


def test_tile_legacy_tiles_and_axis() -> None:
    x = _rand(2, 3)
    model = node_model("Tile", {"x": x}, opset=1, initializers={"tiles": _i64(3), "axis": _i64(1)})
    for mode in rt.MEMORY_MODES:
        np.testing.assert_array_equal(run_runtime(model, {"x": x}, mode)[0], np.tile(x, (1, 3)))


# ------------------------------------------------------------------------ Range


@pytest.mark.parametrize(
    "start,limit,delta,dtype",
    [(0, 10, 3, np.int64), (10, 4, -2, np.int32), (0.5, 3.2, 0.7, np.float32), (1, 1, 1, np.int64),
     (5, 1, 2, np.int64), (0.0, 1.0, 0.1, np.float64)],
)
def test_range(start: float, limit: float, delta: float, dtype: type) -> None:
    inits = {"start": np.array(start, dtype), "limit": np.array(limit, dtype), "delta": np.array(delta, dtype)}
    model = node_model("Range", {}, opset=11, initializers=inits)
    assert_matches(model, {})
    assert rt.Core().compile_model(model).describe_plan() == []


# ---------------------------------------------------- DepthToSpace/SpaceToDepth


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode: str) -> None:
    x = _rand(2, 8, 3, 4)
    assert_matches(node_model("DepthToSpace", {"x": x}, opset=13, blocksize=2, mode=mode), {"x": x})


def test_space_to_depth_and_back() -> None:
    x = _rand(2, 3, 6, 4)
    assert_matches(node_model("SpaceToDepth", {"x": x}, opset=13, blocksize=2), {"x": x})
    model = chain_model([helper.make_node("SpaceToDepth", ["x"], ["d"], blocksize=2),
                         helper.make_node("DepthToSpace", ["d"], ["y"], blocksize=2, mode="DCR")], {"x": x})
    for mode in rt.MEMORY_MODES:
        np.testing.assert_array_equal(run_runtime(model, {"x": x}, mode)[0], x)


# ---------------------------------------------------------------- Trilu/CumSum


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -5, 9])
def test_trilu(upper: int, k: int | None) -> None:
    x = _rand(2, 4, 5)
    inits = {} if k is None else {"k": np.array(k, np.int64)}
    assert_matches(node_model("Trilu", {"x": x}, opset=14, initializers=inits, upper=upper), {"x": x})


def test_trilu_k_read_at_run_time() -> None:
    x = _rand(3, 4)
    model = node_model("Trilu", {"x": x, "k": np.array(1, np.int64)}, opset=14, upper=0)
    for k in (-1, 0, 2):
        feeds = {"x": x, "k": np.array(k, np.int64)}
        assert_matches(model, feeds)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(exclusive: int, reverse: int, axis: int) -> None:
    x = _rand(3, 4, 5)
    model = node_model("CumSum", {"x": x}, opset=14, initializers={"axis": np.array(axis, np.int64)},
                       exclusive=exclusive, reverse=reverse)
    assert_matches(model, {"x": x})


def test_cumsum_int_axis_fed_at_run_time() -> None:
    x = RNG.integers(-5, 5, (3, 4)).astype(np.int32)
    model = node_model("CumSum", {"x": x, "axis": np.array(1, np.int32)}, opset=14, exclusive=1)
    assert_matches(model, {"x": x, "axis": np.array(1, np.int32)})
    assert_matches(model, {"x": x, "axis": np.array(0, np.int32)})


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum_and_trilu_in_place(exclusive: int, reverse: int) -> None:
    x = _rand(4, 6)
    nodes = [helper.make_node("Add", ["x", "x"], ["t"]),
             helper.make_node("CumSum", ["t", "axis"], ["c"], exclusive=exclusive, reverse=reverse),
             helper.make_node("Trilu", ["c"], ["y"], upper=1)]
    model = chain_model(nodes, {"x": x}, initializers={"axis": np.array(1, np.int64)})
    assert_matches(model, {"x": x})
    assert inplace_pairs(model) == 2  # both write over their dying input


# ------------------------------------------------- conformance, shapes frozen

MY_MODULES = {"shape_ops", "tensor", "indexing", "reduce"}


def _module(op: str) -> str:
    from runtime.ops import REGISTRY

    return REGISTRY[op][0].prepare.__module__.rsplit(".", 1)[-1] if op in REGISTRY else ""


def _is_shape_input(value: np.ndarray) -> bool:
    return value.ndim == 0 or (value.dtype.kind in "iub" and value.ndim <= 1 and value.size <= 8)


def _frozen_candidates() -> list:
    """Cases of these kernels (with elementwise helpers) that have small integer inputs: the
    planner refuses those as data-dependent, so they run here with the inputs frozen."""
    from runtime.ops.common import onnx_dtype
    from tests.test_conformance import CASES  # collected once per session

    def plain(vi: onnx.ValueInfoProto) -> bool:
        try:
            return vi.type.HasField("tensor_type") and onnx_dtype(vi.type.tensor_type.elem_type) is not None
        except rt.Error:
            return False

    picked = []
    for c in CASES:
        modules = {_module(n.op_type) if n.domain in ("", "ai.onnx") else "" for n in c.model.graph.node}
        if not modules & MY_MODULES or not modules <= MY_MODULES | {"elementwise"}:
            continue
        if not all(plain(i) for i in c.model.graph.input):
            continue
        if "training_dropout" in c.name and "zero_ratio" not in c.name:
            continue  # random masks
        first = [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
                 for v in c.data_sets[0][0]]
        if any(_is_shape_input(v) for v in first):
            picked.append(c)
    return sorted(picked, key=lambda c: c.name)


FROZEN = _frozen_candidates()


@pytest.mark.parametrize("case", FROZEN, ids=[c.name for c in FROZEN])
def test_conformance_with_shape_inputs_frozen(case) -> None:
    """Every node case of these ops passes once small integer inputs are constants."""
    for inputs, outputs in case.data_sets:
        model = copy.deepcopy(case.model)
        feeds = {}
        for vi, raw in zip(list(model.graph.input), inputs):
            value = numpy_helper.to_array(raw) if isinstance(raw, onnx.TensorProto) else np.asarray(raw)
            if _is_shape_input(value):
                model.graph.initializer.append(numpy_helper.from_array(value, vi.name))
            else:
                feeds[vi.name] = value
        got = rt.Core(compile_threads=1).compile_model(model).infer(feeds)
        for vi, raw in zip(model.graph.output, outputs):
            expected = numpy_helper.to_array(raw) if isinstance(raw, onnx.TensorProto) else np.asarray(raw)
            actual = got[vi.name]
            assert actual.shape == expected.shape
            if expected.dtype.kind in "fc":
                np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol, equal_nan=True)
            else:
                assert actual.dtype == expected.dtype
                np.testing.assert_array_equal(actual, expected)
