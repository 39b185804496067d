"""CompiledModel: a graph after passes, its plans per input signature, requests and statistics."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import flags
from .arena import Arena
from .errors import DataDependentShapeError, InputError
from .executor import InferRequest
from .frontend import Model
from .ir import Dim, Graph, TensorInfo, describe, shape_str
from .lowering import Program, Signature, lower, signature_of
from .memory import MemoryPlan, plan_memory
from .release import release_memory

if TYPE_CHECKING:
    from .core import Core


@dataclass(frozen=True)
class Port:
    """A model input or output: name, dtype, shape (symbolic dims as names, unknown as None)."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...]

    def __repr__(self) -> str:
        return f"Port({self.name!r}, {self.dtype.name}{shape_str(self.shape)})"


def _want(info: TensorInfo) -> str:
    """'float32[1,3,224,224]': built only when an error message needs it."""
    return f"{info.dtype.name}{shape_str(info.shape)}"


def _plan_fits(plan: MemoryPlan, program: Program, mode: str) -> bool:
    """A stored plan is used only if it places every tensor and scratch buffer of the program."""
    if plan.mode != mode or len(plan.scratch) != len(program.steps):
        return False
    for step in program.steps:
        if len(plan.scratch[step.index]) != len(step.kernel.scratch):
            return False
        for name in step.outputs:
            if name and name not in program.known and name not in plan.place:
                return False
    for name, (b, off) in plan.place.items():
        info = program.infos.get(name)
        if info is None or b >= len(plan.buffers) or off + info.nbytes > plan.buffers[b]:
            return False
    return True


class CompiledModel:
    """A graph after passes, planned for its static input shapes (or per shape on first use)."""

    PLAN_CACHE = 8
    MAX_VALUE_INPUT = 4096  # elements: larger integer inputs are data, never shapes

    def __init__(
        self, core: Core, graph: Graph, *, mode: str, keep: tuple[str, ...] = (),
        pass_stats: dict[str, int] | None = None, source: Model | None = None,
        preplanned: MemoryPlan | None = None,
    ) -> None:
        self.core = core
        self.graph = graph
        self.memory_mode = mode
        self.keep = keep
        self.memory_config = core.memory_config
        self.pass_stats = dict(pass_stats or {})
        self._source = source  # kept only when reduce_constant=False
        self._plans: OrderedDict[Signature, tuple[Program, MemoryPlan]] = OrderedDict()
        self._plans_lock = threading.Lock()
        self._default_request: InferRequest | None = None
        self._request_lock = threading.Lock()
        self._last_request: InferRequest | None = None
        self.static_program: Program | None = None
        self.static_plan: MemoryPlan | None = None
        self.allocate_at_create = mode == "arena"
        self.compile_info: dict[str, Any] = {}
        # Small integer inputs that define shapes (Reshape's shape fed at run time...): planned per value.
        self.value_inputs: frozenset[str] = frozenset()
        static = {v.name: v.info for v in graph.inputs}
        if all(i.static and i.shape != (None,) for i in static.values()):
            try:
                self.static_program, self.static_plan = self.plan_for(static, preplanned)
            except DataDependentShapeError as e:
                self.value_inputs = self._shape_inputs(e, static)  # planned at the first inference
        if self.static_plan is not None:
            if self.static_plan.arena and self.memory_config.shared_arena:
                arena = core.shared_arena
                assert arena is not None
                arena.reserve(self.static_plan.buffers[0])
        if core.get_property("trim_on_release"):
            weakref.finalize(self, release_memory, False)
        flags.debug(1, self._summary())

    # ------------------------------------------------------------------ ports
    @property
    def inputs(self) -> list[Port]:
        return [Port(v.name, v.info.dtype, v.info.shape) for v in self.graph.inputs]

    @property
    def outputs(self) -> list[Port]:
        prog = self.static_program
        ports = []
        for v in self.graph.outputs:
            if prog is not None and v.name in prog.infos:
                info = prog.infos[v.name]
            else:
                info = v.info
            ports.append(Port(v.name, info.dtype, info.shape))
        return ports

    # --------------------------------------------------------------- planning
    def signature(self, infos: dict[str, TensorInfo]) -> Signature:
        return signature_of(infos)

    def plan_for(
        self, infos: dict[str, TensorInfo], preplanned: MemoryPlan | None = None,
    ) -> tuple[Program, MemoryPlan]:
        """The program and memory plan for these static input infos (cached per signature).

        ``preplanned`` (from the cache) is used when it fits the lowered program.
        """
        sig = signature_of(infos)
        with self._plans_lock:
            hit = self._plans.get(sig)
            if hit is not None:
                self._plans.move_to_end(sig)
                return hit
        program = lower(self.graph, infos)
        if preplanned is not None and _plan_fits(preplanned, program, self.memory_mode):
            plan = preplanned
        else:
            plan = plan_memory(program, self.memory_mode, keep=self.keep,
                               atomic_clean_policy=self.memory_config.atomic_clean_policy)
        with self._plans_lock:
            self._plans[sig] = (program, plan)
            while len(self._plans) > self.PLAN_CACHE:
                self._plans.popitem(last=False)
        return program, plan

    def plan_for_feeds(
        self, arrays: dict[str, np.ndarray], infos: dict[str, TensorInfo],
    ) -> tuple[Program, MemoryPlan]:
        """Like ``plan_for``; when a shape turns out to be fed as an input, plan per its value."""
        while True:
            try:
                return self.plan_for(infos)
            except DataDependentShapeError as e:
                new = self._shape_inputs(e, infos) - self.value_inputs
                if not new:
                    raise
                self.value_inputs = self.value_inputs | new
                infos = {k: self._info(k, arrays[k]) for k in infos}

    def _shape_inputs(self, error: DataDependentShapeError, infos: dict[str, TensorInfo]) -> frozenset[str]:
        """Small graph inputs upstream of the tensor whose value a kernel needed; none: re-raise."""
        producers = self.graph.producers()
        node = next((n for n in self.graph.nodes if n.name == error.node), None)
        found: set[str] = set()
        todo = [error.tensor] if error.tensor else list(node.inputs) if node is not None else []
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if not name or name in seen:
                continue
            seen.add(name)
            if name in infos:
                info = infos[name]
                if info.dtype.kind in "iubf" and info.static and info.size <= self.MAX_VALUE_INPUT:
                    found.add(name)
            elif name in producers:
                todo.extend(producers[name].inputs)
        if not found:
            raise error
        return frozenset(found)

    def _info(self, name: str, arr: np.ndarray) -> TensorInfo:
        value = arr.copy() if name in self.value_inputs else None
        return TensorInfo(arr.dtype, tuple(int(d) for d in arr.shape), value)

    def arena_for(self, request: InferRequest, plan: MemoryPlan) -> Arena | None:
        """The arena a request's plan runs in, reserved large enough; None for private buffers."""
        if not plan.arena:
            return None
        cfg = self.memory_config
        need = plan.buffers[0]
        if cfg.shared_arena:
            arena = self.core.shared_arena
        elif cfg.size_classes:
            arena = request._arena
            if arena is None:
                arena = Arena(size_classes=True, shared=False)
                request._arena = arena
        else:
            return None
        assert arena is not None
        arena.reserve(need)
        return arena

    # ------------------------------------------------------------------ feeds
    def check_feeds(self, feeds: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, TensorInfo]]:
        """Validate feeds against the inputs; return arrays and their static infos."""
        names = self.graph.input_names
        unknown = [k for k in feeds if k not in names]
        if unknown:
            raise InputError(f"unknown input(s) {describe(unknown)}; the model's inputs are {describe(names)}")
        arrays: dict[str, np.ndarray] = {}
        infos: dict[str, TensorInfo] = {}
        symbols: dict[str, tuple[int, str]] = {}
        for v in self.graph.inputs:
            expect = v.info
            if v.name in feeds:
                raw = feeds[v.name]
                if isinstance(raw, np.ndarray):
                    arr = raw
                else:
                    try:
                        arr = np.asarray(raw, dtype=expect.dtype)
                    except (TypeError, ValueError) as e:
                        raise InputError(f"input '{v.name}': cannot convert to {_want(expect)}: {e}") from e
            elif v.name in self.graph.defaults:
                arr = self.graph.defaults[v.name]
            else:
                raise InputError(f"missing input '{v.name}' ({_want(expect)}); feeds given: {describe(feeds)}")
            if arr.dtype != expect.dtype:
                raise InputError(f"input '{v.name}' has dtype {arr.dtype.name}; expected {_want(expect)}")
            if expect.shape != (None,):
                if arr.ndim != len(expect.shape):
                    raise InputError(f"input '{v.name}' has shape {list(arr.shape)}; expected {_want(expect)}")
                for axis, (d, s) in enumerate(zip(expect.shape, arr.shape)):
                    if isinstance(d, int) and d != s:
                        raise InputError(f"input '{v.name}' has shape {list(arr.shape)}; expected {_want(expect)}")
                    if isinstance(d, str):
                        seen = symbols.setdefault(d, (int(s), v.name))
                        if seen[0] != s:
                            raise InputError(
                                f"input '{v.name}' axis {axis} is {s} but dim '{d}' is {seen[0]} in input '{seen[1]}'"
                            )
            arrays[v.name] = arr
            infos[v.name] = self._info(v.name, arr)
        return arrays, infos

    # -------------------------------------------------------------- inference
    def create_infer_request(self) -> InferRequest:
        """A request with its own buffers (one per thread)."""
        req = InferRequest(self)
        self._last_request = req
        return req

    def infer(self, feeds: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, np.ndarray]:
        """Convenience: infer on an internal request; returns copies, in graph output order."""
        with self._request_lock:
            if self._default_request is None:
                self._default_request = InferRequest(self)
            req = self._default_request
            self._last_request = req
            out = req.infer(feeds, **kw)
            return {k: np.array(v, copy=True) for k, v in out.items()}

    # ------------------------------------------------------------------ stats
    def describe_plan(self) -> list[dict[str, Any]]:
        """The flat plan: each step with its op, input/output tensors and sizes, scratch."""
        prog = self.static_program or (next(reversed(self._plans.values()))[0] if self._plans else None)
        if prog is None:
            return []
        return [s.describe(prog.infos) for s in prog.steps]

    def current_plan(self) -> tuple[Program, MemoryPlan] | None:
        req = self._last_request
        if req is not None and req._bound is not None:
            return req._bound.program, req._bound.plan
        if self.static_program is not None and self.static_plan is not None:
            return self.static_program, self.static_plan
        return None

    def memory_stats(self) -> dict[str, Any]:
        """Planned and measured memory figures; see the README's memory section."""
        stats: dict[str, Any] = {
            "mode": self.memory_mode,
            "weights_bytes": self.graph.weights_bytes(),
            "atomic_clean_policy": self.memory_config.atomic_clean_policy,
            "static_memory_policy": self.memory_config.static_memory_policy,
        }
        current = self.current_plan()
        if current is None:
            stats.update(intermediate_bytes=None, lower_bound_bytes=None, arena_bytes=None,
                         peak_live_bytes=None, allocations_per_inference=None, steps=None)
            return stats
        program, plan = current
        req = self._last_request
        measured = req if req is not None and req.inferences > 0 else None  # the request whose figures count
        stats.update(
            intermediate_bytes=plan.intermediate_bytes,
            lower_bound_bytes=plan.lower_bound,
            arena_bytes=plan.buffers[0] if plan.arena else 0,
            peak_live_bytes=measured.peak_live_bytes if measured is not None else None,
            allocations_per_inference=(measured.allocations_last if measured is not None
                                       else plan.allocations_per_inference),
            planned_allocations_per_inference=plan.allocations_per_inference,
            buffers=len(plan.buffers),
            steps=len(program.steps),
            inplace_steps=plan.inplace_pairs,
            zero_fills_per_inference=len(plan.zero_start) + sum(len(z) for z in plan.zero_before),
        )
        return stats

    def _summary(self) -> str:
        cur = self.current_plan()
        if cur is None:
            return f"compiled {self.graph.name}: {len(self.graph.nodes)} nodes, planned at first inference"
        program, plan = cur
        naive = sum(program.infos[o].nbytes for st in program.steps for o in st.outputs
                    if o and o not in program.aliases and o not in program.known)
        naive += sum(s.nbytes for st in program.steps for s in st.kernel.scratch)
        return (f"compiled {self.graph.name}: {len(program.steps)} steps, mode {plan.mode}: memory reduced from "
                f"{naive / 2**20:.1f} MB to {plan.intermediate_bytes / 2**20:.1f} MB "
                f"(lower bound {plan.lower_bound / 2**20:.1f} MB)")
