"""Pipelines compose the adapter's steps as documented (a recording fake adapter, no child)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from stress_tests.adapters import Adapter
from stress_tests.pipelines import (
    ALL_CASES,
    CASES,
    OPENVINO_CASES,
    PIPELINE_NAMES,
    PIPELINES,
    STEPS,
    Context,
    case,
    core_options,
    inject_leak,
    stage_names,
)
from stress_tests.spec import CellSpec, CoreOptions


class Recorder(Adapter):
    name = "fake"
    modes = ("default", "arena")
    features = frozenset({"cache_dir", "static_memory_policy", "threads"})

    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.cores: list[Any] = []

    def version(self) -> str:
        return "0"

    def create_core(self, options: CoreOptions) -> Any:
        self.calls["create_core"] += 1
        self.cores.append(options)
        return object()

    def read_model(self, core: Any, path: str) -> Any:
        self.calls["read_model"] += 1
        return ("read", path)

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.calls[f"compile:{mode}:{'read' if isinstance(model, tuple) else 'path'}"] += 1
        return object()

    def create_request(self, compiled: Any) -> Any:
        self.calls["create_request"] += 1
        return object()

    def infer(self, request: Any, feeds: Any) -> Any:
        self.calls["infer"] += 1
        return {}

    def release(self, compiled: Any = ()) -> dict[str, Any]:
        self.calls["release"] += 1
        self.calls["release:alive"] += len(compiled)
        return {}


def run(pipeline: str, iterations: int = 3, **spec: Any) -> tuple[Recorder, Context]:
    chosen = case(pipeline)
    cell = CellSpec(pipeline=pipeline, iterations=iterations, **spec)
    adapter = Recorder()
    ctx = Context(cell, adapter, "m.onnx", {"x": np.zeros(1)}, core_options(cell, chosen, "/tmp/cache"),
                  chosen.mode or cell.mode)
    for step in chosen.setup:
        STEPS[step](ctx)
    ctx.mark()
    for _ in range(iterations):
        for step in chosen.body:
            STEPS[step](ctx)
    return adapter, ctx


def test_recompile_compiles_the_file_on_one_core() -> None:
    a, ctx = run("recompile")
    assert a.calls["create_core"] == 1 and a.calls["compile:default:path"] == 3 and a.calls["infer"] == 3
    assert ctx.compiled == [] and ctx.requests == []  # released back to the setup state


def test_recreate_core_builds_everything_each_iteration() -> None:
    a, ctx = run("recreate_core")
    assert a.calls["create_core"] == 3 and a.calls["read_model"] == 3 and a.calls["compile:default:read"] == 3
    assert ctx.core is None


def test_reinfer_only_infers() -> None:
    a, ctx = run("reinfer", iterations=5)
    assert a.calls["compile:default:read"] == 1 and a.calls["create_request"] == 1 and a.calls["infer"] == 5
    assert len(ctx.requests) == 1


def test_recreate_request_keeps_the_compiled_model() -> None:
    a, ctx = run("recreate_request")
    assert a.calls["compile:default:read"] == 1 and a.calls["create_request"] == 3
    assert len(ctx.compiled) == 1 and ctx.requests == []


def test_cached_recompile_warms_a_cache_dir() -> None:
    a, _ = run("cached_recompile")
    assert a.cores[0].cache_dir == "/tmp/cache"
    assert a.calls["compile:default:path"] == 1 + 3


def test_mode_switch_runs_every_mode_each_iteration() -> None:
    a, _ = run("mode_switch", iterations=2)
    assert a.calls["compile:default:path"] == 2 and a.calls["compile:arena:path"] == 2


def test_multi_graph_shares_an_arena() -> None:
    a, ctx = run("multi_graph", graphs=4, iterations=2)
    assert a.cores[0].static_memory_policy == 2 and ctx.mode == "arena"
    assert a.calls["compile:arena:path"] == 8 and a.calls["infer"] == 8


def test_threads_infer_on_their_own_requests() -> None:
    a, ctx = run("threads", threads=3, iterations=2)
    assert len(ctx.requests) == 3 and len(set(map(id, ctx.requests))) == 3
    assert a.calls["infer"] == 6


def test_memcheck_is_stages_only() -> None:
    assert not CASES["memcheck"].iterates
    assert stage_names(CASES["memcheck"].setup)[-3:] == ["infer", "infer#2", "release"]


def test_injected_leak_is_real_touched_memory() -> None:
    store: list[bytearray] = []
    inject_leak(store, 10000)
    inject_leak(store, 0)
    assert len(store) == 1 and len(store[0]) == 10000 and store[0][4096] == 0xA5


@pytest.mark.parametrize("pipeline", sorted(ALL_CASES))
def test_every_case_uses_known_steps(pipeline: str) -> None:
    chosen = ALL_CASES[pipeline]
    assert set(chosen.setup) | set(chosen.body) <= set(STEPS)


# OpenVINO's memleaks pipelines: per iteration, what OpenVINO's test of that name does.
def test_create_compiled_model_builds_a_core_and_compiles_each_iteration() -> None:
    a, ctx = run("create_compiled_model")
    assert a.calls["create_core"] == 3 and a.calls["read_model"] == 3 and a.calls["compile:default:read"] == 3
    assert a.calls["create_request"] == 0 and a.calls["infer"] == 0 and ctx.compiled == []


def test_recreate_compiled_model_reads_and_compiles_on_one_core() -> None:
    a, _ = run("recreate_compiled_model")
    assert a.calls["create_core"] == 1 and a.calls["read_model"] == 3 and a.calls["compile:default:read"] == 3
    assert a.calls["infer"] == 0


def test_create_infer_request_stops_before_inference() -> None:
    a, _ = run("create_infer_request")
    assert a.calls["create_core"] == 3 and a.calls["create_request"] == 3 and a.calls["infer"] == 0


def test_recreate_infer_request_keeps_the_compiled_model_alive_for_release() -> None:
    a, ctx = run("recreate_infer_request", iterations=4)
    assert a.calls["compile:default:read"] == 1 and a.calls["create_request"] == 4 and a.calls["infer"] == 0
    assert a.calls["release:alive"] == 4 and ctx.requests == [] and len(ctx.compiled) == 1


def test_recreate_and_infer_in_thread_uses_a_new_thread_each_iteration(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[str] = []
    infer = Recorder.infer

    def record(self: Recorder, request: Any, feeds: Any) -> Any:
        threads.append(threading.current_thread().name)
        return infer(self, request, feeds)

    monkeypatch.setattr(Recorder, "infer", record)
    a, ctx = run("recreate_and_infer_in_thread")
    assert a.calls["compile:default:read"] == 1 and a.calls["create_request"] == 3 and a.calls["infer"] == 3
    assert threads == ["request-and-infer"] * 3 and ctx.requests == []


def test_inference_with_streams_infers_every_request_the_runtime_asks_for() -> None:
    a, _ = run("inference_with_streams", threads=3, iterations=2)
    assert a.calls["create_core"] == 2 and a.calls["create_request"] == 6 and a.calls["infer"] == 6


def test_openvino_aliases_run_memgate_cases() -> None:
    assert OPENVINO_CASES["infer_request_inference"] is CASES["recreate_core"]
    assert OPENVINO_CASES["reinfer_request_inference"] is CASES["reinfer"]
    assert set(PIPELINE_NAMES) == set(PIPELINES) | set(OPENVINO_CASES)
    assert not set(OPENVINO_CASES) & set(PIPELINES), "the gating set runs memgate's own names only"
    with pytest.raises(KeyError, match="unknown pipeline 'nope'"):
        case("nope")
