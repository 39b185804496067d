"""Each pass alone: what it rewrites, what it must leave alone, and its off switch."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt
from runtime import flags
from runtime.frontend import read_model, to_graph
from runtime.ir import Graph, Node, TensorInfo, ValueInfo
from runtime.passes import PASSES, PassContext, run_passes, schedule

F32 = np.dtype(np.float32)


def graph(nodes, inputs=("x",), outputs=("y",), constants=None, shape=(1, 2, 3, 3)) -> Graph:
    return Graph(
        nodes=[Node(n[0], n[1], list(n[2]), list(n[3]), dict(n[4]) if len(n) > 4 else {}) for n in nodes],
        inputs=[ValueInfo(i, TensorInfo(F32, shape)) for i in inputs],
        outputs=[ValueInfo(o, TensorInfo(F32, (None,))) for o in outputs],
        constants=dict(constants or {}), opset=13,
    )


def ctx(g: Graph, protected=()) -> PassContext:
    return PassContext(protected=frozenset(protected), input_infos={v.name: v.info for v in g.inputs})


def test_schedule_sorts_and_keeps_model_order_when_valid() -> None:
    g = graph([("b", "Relu", ["t"], ["y"]), ("a", "Relu", ["x"], ["t"])])
    assert [n.name for n in schedule(g).nodes] == ["a", "b"]
    ordered = graph([("a", "Relu", ["x"], ["t"]), ("b", "Relu", ["t"], ["y"])])
    assert schedule(ordered) is ordered


def test_remove_identity_rewires_and_keeps_output_names() -> None:
    g = graph([("r", "Relu", ["x"], ["t"]), ("i", "Identity", ["t"], ["u"]),
               ("d", "Dropout", ["u"], ["v"]), ("s", "Sigmoid", ["v"], ["w"]), ("i2", "Identity", ["w"], ["y"])])
    out = PASSES["remove_identity"](g, ctx(g))
    assert [n.op_type for n in out.nodes] == ["Relu", "Sigmoid"]
    assert out.nodes[-1].outputs == ["y"] and out.nodes[-1].inputs == ["t"]


def test_dropout_with_used_mask_is_kept() -> None:
    g = graph([("d", "Dropout", ["x"], ["y", "mask"])], outputs=("y", "mask"))
    assert len(PASSES["remove_identity"](g, ctx(g)).nodes) == 1


def test_fold_constants_folds_constant_chains_and_shape_of_static_inputs() -> None:
    g = graph([
        ("cs", "ConstantOfShape", ["shape"], ["ones"], {"value": np.array([1.0], np.float32)}),
        ("add", "Add", ["ones", "ones"], ["twos"]),
        ("shp", "Shape", ["x"], ["xs"]),
        ("mul", "Mul", ["x", "twos"], ["y"]),
        ("out2", "Identity", ["xs"], ["s"]),
    ], outputs=("y", "s"), constants={"shape": np.array([1, 2, 3, 3], np.int64)})
    out = PASSES["fold_constants"](g, ctx(g))
    assert [n.name for n in out.nodes] == ["mul"]
    np.testing.assert_array_equal(out.constants["twos"], np.full((1, 2, 3, 3), 2, np.float32))
    np.testing.assert_array_equal(out.constants["s"], [1, 2, 3, 3])


def test_fold_constants_uses_the_thread_pool() -> None:
    from concurrent.futures import ThreadPoolExecutor

    nodes = [(f"n{i}", "Add", [f"c{i}", f"c{i}"], [f"d{i}"]) for i in range(6)]
    nodes += [(f"m{i}", "Mul", ["x", f"d{i}"], [f"y{i}"]) for i in range(6)]
    g = graph(nodes, outputs=tuple(f"y{i}" for i in range(6)),
              constants={f"c{i}": np.full((1, 2, 3, 3), i, np.float32) for i in range(6)})
    c = ctx(g)
    with ThreadPoolExecutor(2) as pool:
        c.pool = pool
        out = PASSES["fold_constants"](g, c)
    assert len(out.nodes) == 6 and c.stats["folded_nodes"] == 6
    np.testing.assert_array_equal(out.constants["d5"], np.full((1, 2, 3, 3), 10, np.float32))


def _conv_bn_model(keep_bn_input=False):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "scale"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "shift"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
             numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.1, "var")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], name="bn",
                              epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["y"], name="relu")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if keep_bn_input:
        outs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "cbr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _ops(model, **kw) -> list[str]:
    compiled = rt.Core().compile_model(model, **kw)
    return [n.op_type for n in compiled.graph.nodes]


def test_fold_batchnorm_and_fuse_activation_give_one_conv() -> None:
    model = _conv_bn_model()
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert _ops(model) == ["Conv"]
    fused = rt.Core().compile_model(model)
    assert fused.graph.nodes[0].activation == ["Relu", {}]
    plain = rt.Core().compile_model(model, disable_passes={"fold_batchnorm", "fuse_activation"})
    assert [n.op_type for n in plain.graph.nodes] == ["Conv", "BatchNormalization", "Relu"]
    np.testing.assert_allclose(fused.infer({"x": x})["y"], plain.infer({"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_passes_leave_graph_outputs_and_kept_tensors_alone() -> None:
    kept = rt.Core().compile_model(_conv_bn_model(keep_bn_input=True))
    assert [n.op_type for n in kept.graph.nodes] == ["Conv", "BatchNormalization"]  # the Relu fuses into BN
    assert kept.graph.nodes[1].activation == ["Relu", {}]
    assert _ops(_conv_bn_model(), keep=["bn"]) == ["Conv", "Relu"]  # BN folds; Relu stays so "bn" exists


def test_dead_code_removes_unused_nodes_and_constants() -> None:
    g = graph([("a", "Relu", ["x"], ["y"]), ("dead", "Add", ["x", "k"], ["z"])],
              constants={"k": np.ones(1, np.float32)})
    out = PASSES["dead_code"](g, ctx(g))
    assert [n.name for n in out.nodes] == ["a"] and not out.constants
    kept = PASSES["dead_code"](g, ctx(g, protected=["z"]))
    assert len(kept.nodes) == 2


def test_fuse_clip_with_constant_bounds_only() -> None:
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"]),
                           helper.make_node("Clip", ["c", "lo", "hi"], ["y"])], "clip",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [lo, hi, w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    compiled = rt.Core().compile_model(m)
    assert compiled.graph.nodes[0].activation == ["Clip", {"min": 0.0, "max": 6.0}]
    x = np.array([-1, 2, 3, 9, 0, 1, 5, 2], np.float32).reshape(1, 2, 2, 2)
    np.testing.assert_array_equal(compiled.infer({"x": x})["y"], np.clip(x.sum(1, keepdims=True).repeat(2, 1), 0, 6))


def test_relu_after_sum_fuses_but_not_after_max() -> None:
    # The light zoo's ResNet-50 ends every block with Sum + Relu; Max has no fused form.
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a", "b", "c")]
    for op, fused in (("Sum", True), ("Max", False)):
        g = helper.make_graph([helper.make_node(op, ["a", "b", "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
                              op, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        compiled = rt.Core().compile_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
        assert [n.op_type for n in compiled.graph.nodes] == ([op] if fused else [op, "Relu"])
        feeds = {n: np.arange(6, dtype=np.float32).reshape(2, 3) - k * 2 for k, n in enumerate("abc")}
        expect = np.maximum(sum(feeds.values()) if fused else np.maximum.reduce(list(feeds.values())), 0)
        np.testing.assert_array_equal(compiled.infer(feeds)["y"], expect)


def test_pass_switches_by_argument_and_environment() -> None:
    model = _conv_bn_model()
    with pytest.raises(rt.ConfigError, match="unknown pass"):
        rt.Core().compile_model(model, disable_passes={"nonsense"})
    with flags.override(DISABLE_PASSES=frozenset({"fuse_activation"})):
        assert "Relu" in _ops(model)
    assert "Relu" not in _ops(model)


def test_run_passes_pipeline_on_real_model() -> None:
    m = read_model(_conv_bn_model())
    g = to_graph(m)
    c = ctx(g)
    out = run_passes(g, c)
    assert len(out.nodes) <= len(g.nodes)


def _affine_model(producer: str, mul_shape=(4, 1, 1), add_shape=(1, 4, 1, 1), extra_out=None, rank=4):
    """x -> Conv or (Conv, BatchNormalization) -> Mul(k) -> Add(d) -> Relu -> y, per-channel k and d."""
    rng = np.random.default_rng(3)
    spatial = [6] * (rank - 2)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3) + (3,) * (rank - 2)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal(mul_shape).astype(np.float32), "k"),
             numpy_helper.from_array(rng.standard_normal(add_shape).astype(np.float32), "d")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1] * (2 * (rank - 2)), name="conv")]
    src = "c"
    if producer == "bn":
        inits += [numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "scale"),
                  numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "shift"),
                  numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
                  numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.1, "var")]
        nodes += [helper.make_node("Relu", ["c"], ["r"], name="pre"),  # keeps BN off the Conv
                  helper.make_node("BatchNormalization", ["r", "scale", "shift", "mean", "var"], ["bn"], name="bn")]
        src = "bn"
    nodes += [helper.make_node("Mul", [src, "k"], ["m"], name="mul"),
              helper.make_node("Add", ["d", "m"], ["a"], name="add"),
              helper.make_node("Relu", ["a"], ["y"], name="relu")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_out:
        outs.append(helper.make_tensor_value_info(extra_out, TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, *spatial])],
                          outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _same_outputs(model, x) -> None:
    folded = rt.Core().compile_model(model).infer({"x": x})
    plain = rt.Core().compile_model(model, disable_passes={"fold_affine"}).infer({"x": x})
    for name in plain:
        np.testing.assert_allclose(folded[name], plain[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("producer", ["conv", "bn"])
def test_fold_affine_folds_per_channel_mul_and_add_and_frees_the_activation(producer) -> None:
    model = _affine_model(producer)
    compiled = rt.Core().compile_model(model)
    last = compiled.graph.nodes[-1]
    want = ["Conv"] if producer == "conv" else ["Conv", "BatchNormalization"]
    assert [n.op_type for n in compiled.graph.nodes] == want
    assert last.activation == ["Relu", {}]
    assert "k" not in compiled.graph.constants and "d" not in compiled.graph.constants  # replaced, dropped
    x = np.random.default_rng(4).standard_normal((1, 3, 6, 6)).astype(np.float32)
    _same_outputs(model, x)
    plain = rt.Core().compile_model(model, disable_passes={"fold_affine"})
    assert [n.op_type for n in plain.graph.nodes][-2:] == ["Mul", "Add"]


@pytest.mark.parametrize("mul_shape", [(1, 1, 1, 6), (6,), (1, 4, 6, 1), (2, 4, 1, 1), (1, 1, 4, 1, 1)])
def test_fold_affine_leaves_constants_that_do_not_broadcast_per_channel(mul_shape) -> None:
    add_shape = (1, 4, 1, 1)
    if mul_shape == (2, 4, 1, 1):
        mul_shape = (1, 4, 1, 1)  # batch-broadcast would change the shape: use it on the Add instead
        add_shape = (2, 4, 1, 1)
    model = _affine_model("conv", mul_shape=mul_shape, add_shape=add_shape)
    ops = [n.op_type for n in rt.Core().compile_model(model).graph.nodes]
    assert ("Add" if add_shape[0] == 2 else "Mul") in ops
    x = np.random.default_rng(5).standard_normal((1, 3, 6, 6)).astype(np.float32)
    _same_outputs(model, x)


def test_fold_affine_scalar_and_one_d_models_fold() -> None:
    model = _affine_model("conv", mul_shape=(), add_shape=(4, 1), rank=3)
    ops = [n.op_type for n in rt.Core().compile_model(model).graph.nodes]
    assert ops == ["Conv"]
    _same_outputs(model, np.random.default_rng(6).standard_normal((1, 3, 6)).astype(np.float32))


def test_fold_affine_keeps_visible_and_shared_tensors() -> None:
    model = _affine_model("conv", extra_out="m")  # the Mul's output is a graph output: Add cannot fold into it
    ops = [n.op_type for n in rt.Core().compile_model(model).graph.nodes]
    assert ops == ["Conv", "Add"]
    _same_outputs(model, np.random.default_rng(7).standard_normal((1, 3, 6, 6)).astype(np.float32))
    assert [n.op_type for n in rt.Core().compile_model(_affine_model("conv"), keep=["c"]).graph.nodes] == \
        ["Conv", "Mul", "Add"]


def test_fold_affine_needs_a_known_rank() -> None:
    bn = {n: np.ones(2, np.float32) for n in ("s", "t", "mu", "v")}
    g = graph([("re", "Reshape", ["x", "shape"], ["r"]),
               ("bn", "BatchNormalization", ["r", "s", "t", "mu", "v"], ["b"]),
               ("mul", "Mul", ["b", "k"], ["y"])],
              constants={"shape": np.array([1, 2, -1], np.int64), "k": np.ones((2, 1, 1), np.float32), **bn})
    out = PASSES["fold_affine"](g, ctx(g))
    assert [n.op_type for n in out.nodes] == ["Reshape", "BatchNormalization", "Mul"]  # Reshape's rank: unknown
    from runtime.passes.fold_affine import per_channel
    assert per_channel(np.ones((2, 1, 1)), 3, 2) is None  # (2,1,1) on rank 3 is along the batch axis
    assert per_channel(np.ones((2, 1, 1)), 4, 2) is not None
    g2 = graph([("bn", "BatchNormalization", ["x", "s", "t", "mu", "v"], ["b"]), ("mul", "Mul", ["k", "b"], ["y"])],
               constants={"k": np.full((2, 1, 1), 3, np.float32), **bn}, shape=(1, 2, 3, 3))
    out2 = PASSES["fold_affine"](g2, ctx(g2))
    assert [n.op_type for n in out2.nodes] == ["BatchNormalization"] and out2.nodes[0].outputs == ["y"]
    np.testing.assert_array_equal(out2.constants[out2.nodes[0].inputs[1]], [3, 3])
