"""Pipelines: named steps over an adapter, and the named cases built from them.

A case is a setup (run once, each step measured as a stage) and a body (run every iteration;
the first iteration's steps are measured as stages too). ``release`` drops everything the body
created, back to what existed after setup, then asks the runtime to give memory back.

- ``recompile``: compile the model file N times on one Core (the builtin runtime releases a
  read model once compiled, so each compile reads the file, as ``compile_model(path)`` does).
- ``recreate_core``: a new Core, read, compile, request and infer every iteration.
- ``reinfer``: infer N times on one request.
- ``recreate_request``: a new request and one inference per iteration on one compiled model.
- ``cached_recompile``: like recompile with a ``cache_dir`` warmed during setup.
- ``mode_switch``: every iteration compiles and runs the model under each memory mode in turn.
- ``multi_graph``: ``graphs`` compiled copies of the model sharing one arena (static_memory_policy 2).
- ``threads``: ``threads`` threads, each inferring on its own request, every iteration.
- ``memcheck``: no iterations; each stage's memory delta and peak, once, in a fresh process.

OpenVINO's memleaks pipelines (tests/stress_tests/memleaks_tests) run under their own names
(``OPENVINO_CASES``, the mapping table in docs/adapters.md): two are aliases of the cases above
(``infer_request_inference`` = recreate_core, ``reinfer_request_inference`` = reinfer), six
are cases of their own. They are not in the gating set: ``PIPELINES`` names memgate's cases,
``PIPELINE_NAMES`` every name ``--pipeline`` accepts.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .adapters import Adapter
from .spec import CellSpec, CoreOptions


@dataclass
class Context:
    """Everything a pipeline's steps read and write."""

    spec: CellSpec
    adapter: Adapter
    model_path: str
    feeds: dict[str, np.ndarray]
    options: CoreOptions
    mode: str
    core: Any = None
    model: Any = None
    compiled: list[Any] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    outputs: Any = None
    memory_stats: dict[str, Any] = field(default_factory=dict)
    compile_cache: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    _saved: dict[str, Any] = field(default_factory=dict)

    _STATE = ("core", "model", "compiled", "requests", "outputs")

    def mark(self) -> None:
        """Remember what exists after setup: ``release`` goes back to exactly that."""
        self._saved = {k: _copy(getattr(self, k)) for k in self._STATE}

    def restore(self) -> None:
        for k in self._STATE:
            setattr(self, k, _copy(self._saved.get(k)))


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


Step = Callable[[Context], None]


def create_core(ctx: Context) -> None:
    ctx.core = ctx.adapter.create_core(ctx.options)
    for note in getattr(ctx.adapter, "notes", ()):  # what the adapter could not apply, said once
        if note not in ctx.notes:
            ctx.notes.append(note)


def read_model(ctx: Context) -> None:
    ctx.model = ctx.adapter.read_model(ctx.core, ctx.model_path)


def _compile(ctx: Context, mode: str) -> Any:
    source, ctx.model = (ctx.model if ctx.model is not None else ctx.model_path), None  # a read model is used once
    compiled = ctx.adapter.compile(ctx.core, source, mode)
    cache = ctx.adapter.compile_info(compiled).get("cache")
    if cache is not None:
        ctx.compile_cache[str(cache)] += 1
    return compiled


def compile_model(ctx: Context) -> None:
    ctx.compiled = [_compile(ctx, ctx.mode)]


def compile_graphs(ctx: Context) -> None:
    ctx.compiled = [_compile(ctx, ctx.mode) for _ in range(ctx.spec.graphs)]


def compile_streams(ctx: Context) -> None:
    """Compile for ``spec.threads`` streams and create the requests the runtime asks for."""
    source, ctx.model = (ctx.model if ctx.model is not None else ctx.model_path), None
    compiled, n = ctx.adapter.compile_streams(ctx.core, source, ctx.mode, ctx.spec.threads)
    ctx.compiled = [compiled]
    ctx.requests = [ctx.adapter.create_request(compiled) for _ in range(n)]


def create_request(ctx: Context) -> None:
    ctx.requests = [ctx.adapter.create_request(c) for c in ctx.compiled]


def create_thread_requests(ctx: Context) -> None:
    ctx.requests = [ctx.adapter.create_request(ctx.compiled[0]) for _ in range(ctx.spec.threads)]


def infer(ctx: Context) -> None:
    for request in ctx.requests:
        ctx.outputs = ctx.adapter.infer(request, ctx.feeds)
    if not ctx.memory_stats and ctx.compiled:
        ctx.memory_stats = ctx.adapter.memory_stats(ctx.compiled[0])


def infer_threads(ctx: Context) -> None:
    errors: list[BaseException] = []

    def work(request: Any) -> None:
        try:
            ctx.adapter.infer(request, ctx.feeds)
        except BaseException as e:  # noqa: BLE001  (re-raised in the main thread below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(r,), name=f"infer-{i}") for i, r in enumerate(ctx.requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if not ctx.memory_stats and ctx.compiled:
        ctx.memory_stats = ctx.adapter.memory_stats(ctx.compiled[0])


def request_and_infer_in_thread(ctx: Context) -> None:
    """A new thread creates a request on the compiled model and infers once, then ends."""
    def work() -> None:
        ctx.requests = [ctx.adapter.create_request(ctx.compiled[0])]
        infer(ctx)

    _in_thread(work, "request-and-infer")


def _in_thread(work: Callable[[], None], name: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001  (re-raised in the main thread below)
            errors.append(e)

    t = threading.Thread(target=run, name=name)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def each_mode(ctx: Context) -> None:
    """Compile, request and infer under every mode of the runtime, one after the other."""
    for mode in ctx.adapter.modes:
        ctx.compiled = [_compile(ctx, mode)]
        create_request(ctx)
        infer(ctx)
        ctx.compiled, ctx.requests, ctx.outputs = [], [], None


def warm_cache(ctx: Context) -> None:
    """Compile once so the cache holds the model, then drop the compiled model."""
    _compile(ctx, ctx.mode)
    ctx.adapter.release(())


def release(ctx: Context) -> None:
    ctx.restore()
    ctx.adapter.release(tuple(ctx.compiled or ()))  # memcheck releases before any mark: nothing is kept


STEPS: dict[str, Step] = {
    "create_core": create_core, "read_model": read_model, "compile": compile_model,
    "compile_graphs": compile_graphs, "create_request": create_request,
    "create_thread_requests": create_thread_requests, "infer": infer, "infer_threads": infer_threads,
    "each_mode": each_mode, "warm_cache": warm_cache, "release": release, "compile_streams": compile_streams,
    "request_and_infer_in_thread": request_and_infer_in_thread,
}


@dataclass(frozen=True)
class Case:
    """A named pipeline: steps run once, steps run per iteration, and what it needs."""

    setup: tuple[str, ...]
    body: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset()  # adapter features
    core: dict[str, Any] = field(default_factory=dict)  # CoreOptions overrides
    mode: str | None = None  # a mode the case imposes

    @property
    def iterates(self) -> bool:
        return bool(self.body)


_COMPILE_ONCE = ("compile", "create_request", "infer", "release")
CASES: dict[str, Case] = {
    "recompile": Case(("create_core",), _COMPILE_ONCE),
    "recreate_core": Case((), ("create_core", "read_model") + _COMPILE_ONCE),
    "reinfer": Case(("create_core", "read_model", "compile", "create_request"), ("infer",)),
    "recreate_request": Case(("create_core", "read_model", "compile"), ("create_request", "infer", "release")),
    "cached_recompile": Case(("create_core", "warm_cache"), _COMPILE_ONCE, needs=frozenset({"cache_dir"})),
    "mode_switch": Case(("create_core",), ("each_mode", "release")),
    "multi_graph": Case(("create_core",), ("compile_graphs", "create_request", "infer", "release"),
                        needs=frozenset({"static_memory_policy"}), core={"static_memory_policy": 2}, mode="arena"),
    "threads": Case(("create_core", "read_model", "compile", "create_thread_requests"), ("infer_threads",),
                    needs=frozenset({"threads"})),
    "memcheck": Case(("create_core", "read_model", "compile", "create_request", "infer", "infer", "release")),
}
PIPELINES = tuple(CASES)

_READ_COMPILE = ("read_model", "compile")
#: OpenVINO's memleaks pipeline names; each runs what OpenVINO's test of that name runs per iteration.
OPENVINO_CASES: dict[str, Case] = {
    "create_compiled_model": Case((), ("create_core",) + _READ_COMPILE + ("release",)),
    "recreate_compiled_model": Case(("create_core",), _READ_COMPILE + ("release",)),
    "create_infer_request": Case((), ("create_core",) + _READ_COMPILE + ("create_request", "release")),
    "recreate_infer_request": Case(("create_core",) + _READ_COMPILE, ("create_request", "release")),
    "infer_request_inference": CASES["recreate_core"],
    "reinfer_request_inference": CASES["reinfer"],
    "recreate_and_infer_in_thread": Case(("create_core",) + _READ_COMPILE, ("request_and_infer_in_thread",
                                                                            "release")),
    "inference_with_streams": Case((), ("create_core", "read_model", "compile_streams", "infer", "release")),
}
ALL_CASES: dict[str, Case] = {**CASES, **OPENVINO_CASES}
PIPELINE_NAMES = tuple(ALL_CASES)


def case(name: str) -> Case:
    """The case a pipeline name runs (memgate's own or OpenVINO's name)."""
    try:
        return ALL_CASES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINE_NAMES)}") from None


def stage_names(steps: tuple[str, ...], prefix: str = "") -> list[str]:
    """Readable names for measured steps; a repeated step gets ``#2``, ``#3``."""
    seen: Counter = Counter()
    out = []
    for s in steps:
        seen[s] += 1
        out.append(f"{prefix}{s}" + (f"#{seen[s]}" if seen[s] > 1 else ""))
    return out


def core_options(spec: CellSpec, case: Case, cache_dir: str | None) -> CoreOptions:
    """The spec's Core options with the case's overrides (and a cache dir when the case needs one)."""
    changes = dict(case.core)
    if "cache_dir" in case.needs and spec.core.cache_dir is None:
        changes["cache_dir"] = cache_dir
    return dataclasses.replace(spec.core, **changes)


def inject_leak(store: list[bytearray], nbytes: int) -> None:
    """Self-test: keep ``nbytes`` of touched memory (multiplying a byte writes every page)."""
    if nbytes:
        store.append(bytearray(b"\xa5") * nbytes)
