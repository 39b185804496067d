"""Memory modes end to end: identical outputs, released tensors, statistics, MemoryConfig policies."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import runtime as rt
from runtime.ir import TensorInfo
from runtime.ops.common import info
from runtime.ops.registry import REGISTRY, Kernel, OpContext, register

RNG = np.random.default_rng(1)


def _model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "m", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def chain_model(channels=(4, 8, 8, 4), size=12):
    """Conv -> Relu -> Conv -> Sigmoid -> Add(skip) -> Conv: in-place, scratch, a skip connection."""
    nodes, inits = [], []
    prev = "x"
    rng = np.random.default_rng(7)  # same weights every call
    for i, (cin, cout) in enumerate(zip(channels, channels[1:])):
        w = numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"))
        act = "Relu" if i % 2 == 0 else "Sigmoid"
        nodes.append(helper.make_node(act, [f"c{i}"], [f"a{i}"], name=f"act{i}"))
        prev = f"a{i}"
    nodes.append(helper.make_node("Add", ["a1", "a0"], ["skip"], name="skip"))
    nodes.append(helper.make_node("Mul", ["skip", "skip"], ["sq"], name="square"))
    nodes.append(helper.make_node("Sigmoid", ["sq"], ["y"], name="out"))
    return _model(nodes, [_vi("x", [1, channels[0], size, size])], [_vi("y", None), _vi("a2", None)], inits)


X = RNG.standard_normal((1, 4, 12, 12)).astype(np.float32)


@pytest.mark.parametrize("mode", rt.MEMORY_MODES)
def test_every_mode_is_bit_identical_to_default(mode: str) -> None:
    core = rt.Core()
    ref = core.compile_model(chain_model(), memory_mode="default").infer({"x": X})
    got = core.compile_model(chain_model(), memory_mode=mode).infer({"x": X})
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])


def test_outputs_are_in_graph_order_and_requests_are_independent() -> None:
    compiled = rt.Core().compile_model(chain_model(), memory_mode="arena")
    assert [p.name for p in compiled.outputs] == ["y", "a2"]
    assert list(compiled.infer({"x": X})) == ["y", "a2"]
    r1, r2 = compiled.create_infer_request(), compiled.create_infer_request()
    y1 = r1.infer({"x": X})["y"].copy()
    r2.infer({"x": X * 2})
    np.testing.assert_array_equal(r1.get_tensor("y"), y1)


def test_default_mode_keeps_every_intermediate() -> None:
    compiled = rt.Core().compile_model(chain_model(), memory_mode="default", disable_passes={"fuse_activation"})
    req = compiled.create_infer_request()
    req.infer({"x": X})
    c0 = req.get_tensor("c0")
    assert c0.shape == (1, 8, 12, 12)
    np.testing.assert_array_equal(req.get_tensor("a0"), np.maximum(c0, 0))


@pytest.mark.parametrize("mode", ["reduce", "reuse", "arena"])
def test_released_intermediate_raises_data_removed(mode: str) -> None:
    compiled = rt.Core().compile_model(chain_model(), memory_mode=mode)
    req = compiled.create_infer_request()
    req.infer({"x": X})
    with pytest.raises(rt.DataRemovedError) as e:
        req.get_tensor("skip")
    assert "skip" in str(e.value) and mode in str(e.value)


def test_reduce_hands_each_buffer_back_after_its_last_reader(monkeypatch) -> None:
    """No view or operand list may keep a dropped buffer alive: at every allocation, exactly the
    plan's live buffers are still referenced (a leaked reference would hold the memory reduce frees)."""
    import weakref

    from runtime import executor

    compiled = rt.Core().compile_model(chain_model(), memory_mode="reduce")
    req = compiled.create_infer_request()
    feeds = {"x": RNG.standard_normal((1, 4, 12, 12)).astype(np.float32)}
    req.infer(feeds)
    plan = req._bound.plan
    expected, live = [], len(plan.alloc_start)
    expected += list(range(1, live + 1))
    for i in range(len(plan.alloc_before)):
        for _ in plan.alloc_before[i]:
            live += 1
            expected.append(live)
        live -= len(plan.free_after[i])
    refs: list = []
    seen: list[int] = []
    real = executor.aligned_empty

    def spy(nbytes: int) -> np.ndarray:
        seen.append(sum(r() is not None for r in refs) + 1)
        buf = real(nbytes)
        refs.append(weakref.ref(buf.base if buf.base is not None else buf))
        return buf

    monkeypatch.setattr(executor, "aligned_empty", spy)
    req.infer(feeds)
    assert seen == expected
    assert max(expected) < len(plan.buffers)  # the plan does drop buffers mid-inference


@pytest.mark.parametrize("mode", rt.MEMORY_MODES)
def test_keep_makes_an_intermediate_retrievable(mode: str) -> None:
    core = rt.Core()
    ref_req = core.compile_model(chain_model(), memory_mode="default").create_infer_request()
    ref_req.infer({"x": X})
    compiled = core.compile_model(chain_model(), memory_mode=mode, keep=["skip", "c0"])
    req = compiled.create_infer_request()
    req.infer({"x": X})
    np.testing.assert_array_equal(req.get_tensor("skip"), ref_req.get_tensor("skip"))
    assert req.get_tensor("c0").shape == (1, 8, 12, 12)  # kept, so activation fusion left it alone


def test_keep_unknown_name_is_a_config_error() -> None:
    with pytest.raises(rt.ConfigError, match="nope"):
        rt.Core().compile_model(chain_model(), keep=["nope"])


def test_memory_stats_fields_and_ordering() -> None:
    core = rt.Core()
    stats = {}
    for mode in rt.MEMORY_MODES:
        compiled = core.compile_model(chain_model(size=32), memory_mode=mode)
        compiled.infer({"x": RNG.standard_normal((1, 4, 32, 32)).astype(np.float32)})
        stats[mode] = compiled.memory_stats()
    for mode, s in stats.items():
        for key in ("mode", "weights_bytes", "intermediate_bytes", "lower_bound_bytes", "arena_bytes",
                    "peak_live_bytes", "allocations_per_inference"):
            assert key in s, (mode, key)
        assert s["intermediate_bytes"] >= s["lower_bound_bytes"] > 0
    assert stats["arena"]["arena_bytes"] == stats["arena"]["intermediate_bytes"]
    assert stats["arena"]["intermediate_bytes"] <= 1.02 * stats["arena"]["lower_bound_bytes"]
    assert stats["reduce"]["allocations_per_inference"] > 0
    assert stats["default"]["allocations_per_inference"] == stats["arena"]["allocations_per_inference"] == 0
    peaks = {m: s["peak_live_bytes"] for m, s in stats.items()}
    assert peaks["reduce"] <= peaks["reuse"] <= peaks["default"]
    assert stats["arena"]["peak_live_bytes"] < stats["default"]["peak_live_bytes"]


# ------------------------------------------------------------------ random graphs

@st.composite
def random_graphs(draw: st.DrawFn):
    n = draw(st.integers(2, 14))
    chans = [3]
    nodes, inits = [], []
    tensors = {"x": 3}  # name -> channels
    for i in range(n):
        op = draw(st.sampled_from(["Conv", "Relu", "Sigmoid", "Add", "Mul", "LeakyRelu"]))
        src = draw(st.sampled_from(sorted(tensors)))
        out = f"t{i}"
        if op == "Conv":
            cout = draw(st.sampled_from([2, 3, 5, 8]))
            k = draw(st.sampled_from([1, 3]))
            w = RNG.standard_normal((cout, tensors[src], k, k)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(helper.make_node("Conv", [src, f"w{i}"], [out], pads=[k // 2] * 4))
            tensors[out] = cout
        elif op in ("Add", "Mul"):
            same = sorted(t for t, c in tensors.items() if c == tensors[src])
            other = draw(st.sampled_from(same))
            nodes.append(helper.make_node(op, [src, other], [out]))
            tensors[out] = tensors[src]
        else:
            nodes.append(helper.make_node(op, [src], [out]))
            tensors[out] = tensors[src]
        chans.append(tensors[out])
    produced = [f"t{i}" for i in range(n)]
    outs = sorted(set([produced[-1]] + draw(st.lists(st.sampled_from(produced), max_size=3))))
    model = _model(nodes, [_vi("x", [1, 3, 6, 7])], [_vi(o, None) for o in outs], inits)
    return model, outs


@settings(max_examples=60, deadline=None)
@given(random_graphs())
def test_random_graphs_agree_across_modes(graph) -> None:
    model, outs = graph
    x = RNG.standard_normal((1, 3, 6, 7)).astype(np.float32)
    core = rt.Core(compile_threads=1)
    ref = core.compile_model(model, memory_mode="default").infer({"x": x})
    for mode in ("reduce", "reuse", "arena"):
        compiled = core.compile_model(model, memory_mode=mode)
        req = compiled.create_infer_request()
        for _ in range(2):  # a second run on the same buffers must give the same result
            got = req.infer({"x": x})
            for o in outs:
                np.testing.assert_array_equal(got[o], ref[o], err_msg=f"{mode}: {o}")
        s = compiled.memory_stats()
        assert s["intermediate_bytes"] >= s["lower_bound_bytes"]


# ------------------------------------------------------- atomic_clean_policy

if "MemgateTestAccumulate" not in REGISTRY:

    @register("MemgateTestAccumulate", 1)
    def MemgateTestAccumulate(ctx: OpContext, x: TensorInfo) -> Kernel:
        """Test-only memset kernel: accumulates its input into a zeroed output twice."""

        def run(ins, outs, scratch):
            assert not outs[0].any(), "memset output was not zeroed"
            outs[0] += ins[0]
            outs[0] += ins[0]

        return Kernel([info(x.dtype, x.shape)], run, zero_init=(0,))


def memset_model():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("MemgateTestAccumulate", ["r"], ["acc1"]),
        helper.make_node("Sigmoid", ["acc1"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["s2"]),
        helper.make_node("MemgateTestAccumulate", ["s2"], ["acc2"]),
        helper.make_node("Relu", ["acc2"], ["y"]),
    ]
    return _model(nodes, [_vi("x", [1, 64, 32, 32])], [_vi("y", None)])


@pytest.mark.parametrize("mode", rt.MEMORY_MODES)
def test_atomic_clean_policies_zero_memset_outputs(mode: str) -> None:
    x = RNG.standard_normal((1, 64, 32, 32)).astype(np.float32)
    expected = np.maximum(2 / (1 + np.exp(-1 / (1 + np.exp(-2 * np.maximum(x, 0))))), 0)
    results = {}
    for policy in (0, 1):
        core = rt.Core(memory_config=rt.MemoryConfig(atomic_clean_policy=policy))
        compiled = core.compile_model(memset_model(), memory_mode=mode)
        req = compiled.create_infer_request()
        for _ in range(2):  # buffers hold old data the second time: they must be zeroed again
            y = req.infer({"x": x})["y"]
        np.testing.assert_allclose(y, expected, rtol=1e-6)
        results[policy] = compiled.memory_stats()
    assert results[0]["zero_fills_per_inference"] == 1  # one contiguous fill covers both
    assert results[1]["zero_fills_per_inference"] == 2  # each zeroed before its kernel
    if mode != "default":
        assert results[1]["lower_bound_bytes"] < results[0]["lower_bound_bytes"]


# ---------------------------------------------------------- static_memory_policy

def test_invalid_memory_config_is_rejected_at_construction() -> None:
    with pytest.raises(rt.ConfigError):
        rt.MemoryConfig(atomic_clean_policy=2)
    with pytest.raises(rt.ConfigError):
        rt.MemoryConfig(static_memory_policy=5)
    with pytest.raises(rt.ConfigError):
        rt.Core(memory_config=rt.MemoryConfig(static_memory_policy=2)).compile_model(chain_model(), memory_mode="reuse")


@pytest.mark.parametrize("policy", [1, 2, 4])
def test_shared_arena_sized_to_largest_graph_and_grows(policy: int) -> None:
    core = rt.Core(memory_config=rt.MemoryConfig(static_memory_policy=policy))
    small = core.compile_model(chain_model(size=8))
    arena = core.shared_arena
    assert arena is not None and small.memory_mode == "arena"
    cap_small, gen = arena.capacity, arena.generation
    assert cap_small >= small.memory_stats()["arena_bytes"]
    big = core.compile_model(chain_model(size=40))
    assert arena.capacity >= big.memory_stats()["arena_bytes"] > cap_small
    assert arena.generation == gen + 1  # the old arena was released for the larger one
    # Both models run, one after the other, on the one arena; outputs stay correct.
    ref = rt.Core().compile_model(chain_model(size=8)).infer({"x": X[:, :, :8, :8].copy()})
    big.infer({"x": RNG.standard_normal((1, 4, 40, 40)).astype(np.float32)})
    got = small.infer({"x": X[:, :, :8, :8].copy()})
    np.testing.assert_array_equal(got["y"], ref["y"])
    assert arena.generation == gen + 1  # running the smaller graph does not reallocate


def test_shared_arena_rejects_concurrent_inference() -> None:
    core = rt.Core(memory_config=rt.MemoryConfig(static_memory_policy=2))
    compiled = core.compile_model(chain_model(size=16))
    req1, req2 = compiled.create_infer_request(), compiled.create_infer_request()
    x = RNG.standard_normal((1, 4, 16, 16)).astype(np.float32)
    arena = core.shared_arena
    errors: list[BaseException] = []
    started, release = threading.Event(), threading.Event()
    with arena.use():  # simulate an inference in flight on another thread
        def other():
            try:
                req2.infer({"x": x})
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            started.set()

        t = threading.Thread(target=other)
        t.start()
        started.wait(10)
        release.set()
        t.join(10)
    assert errors and isinstance(errors[0], rt.ConcurrencyError)
    req1.infer({"x": x})  # once free, it runs


def test_same_request_used_from_two_threads_is_rejected() -> None:
    compiled = rt.Core().compile_model(chain_model())
    req = compiled.create_infer_request()
    req._lock.acquire()
    try:
        with pytest.raises(rt.ConcurrencyError):
            req.infer({"x": X})
    finally:
        req._lock.release()


def dynamic_model():
    w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    return _model(nodes, [_vi("x", ["N", 3, "H", "W"])], [_vi("y", None)], [w])


@pytest.mark.parametrize("policy", [0, 3, 4])
def test_dynamic_shapes_replan_and_size_classes_reuse_the_arena(policy: int) -> None:
    core = rt.Core(memory_config=rt.MemoryConfig(static_memory_policy=policy))
    compiled = core.compile_model(dynamic_model(), memory_mode="arena")
    assert compiled.inputs[0].shape == ("N", 3, "H", "W")
    req = compiled.create_infer_request()
    ref = rt.Core().compile_model(dynamic_model())
    sizes = [(1, 20, 20), (1, 19, 21), (2, 20, 20), (1, 18, 18), (1, 20, 20)]
    for n, h, w in sizes:
        x = RNG.standard_normal((n, 3, h, w)).astype(np.float32)
        np.testing.assert_array_equal(req.infer({"x": x})["y"], ref.infer({"x": x})["y"])
    if policy in (3, 4):
        arena = core.shared_arena if policy == 4 else req._arena
        # 5 shapes, but size classes absorb the small changes: at most 2 allocations.
        assert arena.grows <= 2


def test_symbolic_dims_must_agree_across_inputs() -> None:
    nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
    model = _model(nodes, [_vi("a", ["N", 4]), _vi("b", ["N", 4])], [_vi("y", None)])
    compiled = rt.Core().compile_model(model)
    with pytest.raises(rt.InputError, match="'N'"):
        compiled.infer({"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 4), np.float32)})


@pytest.mark.parametrize("name", ["light:bvlc_alexnet", "light:densenet121", "light:inception_v1", "light:inception_v2",
                                  "light:resnet50", "light:shufflenet", "light:squeezenet", "light:zfnet512",
                                  "resnet18", "mobilenetv2", "u2netp", "bert"])
def test_arena_plans_within_two_percent_of_the_lower_bound_on_the_zoo(name: str) -> None:
    """The benchmark models as the latency table runs them: Conv's scratch must not spoil the packing."""
    from runtime import zoo

    s = rt.Core().compile_model(zoo.get(name), memory_mode="arena").memory_stats()
    assert s["intermediate_bytes"] <= 1.02 * s["lower_bound_bytes"], s
