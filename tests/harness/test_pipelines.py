"""Pipelines compose the adapter's steps as documented (a recording fake adapter, no child)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from stress_tests.adapters import Adapter
from stress_tests.pipelines import CASES, STEPS, Context, core_options, inject_leak, stage_names
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

    def release(self) -> dict[str, Any]:
        self.calls["release"] += 1
        return {}


def run(pipeline: str, iterations: int = 3, **spec: Any) -> tuple[Recorder, Context]:
    case = CASES[pipeline]
    cell = CellSpec(pipeline=pipeline, iterations=iterations, **spec)
    adapter = Recorder()
    ctx = Context(cell, adapter, "m.onnx", {"x": np.zeros(1)}, core_options(cell, case, "/tmp/cache"),
                  case.mode or cell.mode)
    for step in case.setup:
        STEPS[step](ctx)
    ctx.mark()
    for _ in range(iterations):
        for step in case.body:
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


@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_every_case_uses_known_steps(pipeline: str) -> None:
    case = CASES[pipeline]
    assert set(case.setup) | set(case.body) <= set(STEPS)
