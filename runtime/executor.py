"""InferRequest: runs a program step by step, writing into the buffers its memory plan gives.

Static plans bind every step's arrays once (views into the planned buffers), so a
steady inference allocates no planned memory: the loop is ``run(ins, outs, scratch)``
per step. Dynamic plans (``"reduce"``) allocate each buffer before its first writer
and drop it after its last reader.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .errors import ConcurrencyError, DataRemovedError, Error, InputError, KernelError
from .ir import TensorInfo, describe, shape_str
from .lowering import Program, Step
from .memory import ALIGN, MemoryPlan
from .ops.registry import RunFn

if TYPE_CHECKING:
    from .arena import Arena
    from .core import CompiledModel


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 buffer of ``nbytes`` whose data starts on a 64-byte boundary."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.__array_interface__["data"][0]) % ALIGN
    return raw[start:start + nbytes]


def view(buf: np.ndarray, offset: int, info: TensorInfo) -> np.ndarray:
    # info.nbytes (evaluated first) raises on a non-static shape, so the shape is all ints
    # here; a cast rather than info.dims keeps a second check off the per-inference path.
    return buf[offset:offset + info.nbytes].view(info.dtype).reshape(cast(tuple[int, ...], info.shape))


def _run_fn(step: Step) -> RunFn:
    """The step's kernel function; lowering only makes steps for kernels that have one."""
    run = step.kernel.run
    if run is None:
        raise KernelError(f"node '{step.node}' ({step.op_type}) has a step but no run function")
    return run


def _scratch(step: Step, places: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Views of the step's scratch buffers, which the plan allocates before the step."""
    out = []
    for (bi, off), info in zip(places, step.kernel.scratch):
        buf = buffers[bi]
        if buf is None:
            raise KernelError(f"node '{step.node}' ({step.op_type}): scratch buffer {bi} is not allocated")
        out.append(view(buf, off, info))
    return out


@dataclass
class Bound:
    """A program and plan bound to concrete buffers."""

    program: Program
    plan: MemoryPlan
    buffers: list[np.ndarray | None]
    inputs: dict[str, np.ndarray]
    # (run, ins, outs, scratch) per step; None stands for an omitted input or output.
    steps: list[tuple[RunFn, list[np.ndarray | None], list[np.ndarray | None], list[np.ndarray]]] = field(
        default_factory=list)
    arena_generation: int = -1
    recipe: _DynamicRecipe | None = None  # dynamic plans: operand slots, made at the first run


class InferRequest:
    """Independent inference state for one compiled model; use one request per thread."""

    def __init__(self, compiled: CompiledModel) -> None:
        self._compiled = compiled
        self._lock = threading.Lock()
        self._bound: Bound | None = None
        self._outputs: dict[str, np.ndarray] = {}
        self._tensors: dict[str, np.ndarray] = {}
        self._arena: Arena | None = None  # a private arena, set by CompiledModel.arena_for under size_classes
        self.peak_live_bytes = 0
        self.allocations_last = 0
        self.inferences = 0
        program, plan = compiled.static_program, compiled.static_plan
        if program is not None and compiled.allocate_at_create:
            if plan is None:  # both are set together by CompiledModel.plan_for
                raise Error(f"model '{compiled.graph.name}' has a static program but no memory plan")
            self._bind(program, plan)

    # ------------------------------------------------------------------ public
    def infer(self, feeds: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, np.ndarray]:
        """Run one inference; outputs are views valid until the next infer on this request."""
        if not self._lock.acquire(blocking=False):
            raise ConcurrencyError("this InferRequest is already running; create one request per thread")
        try:
            return self._infer(dict(feeds or {}, **kw))
        finally:
            self._lock.release()

    def get_tensor(self, name: str) -> np.ndarray:
        """An output, a kept intermediate, a graph input, a constant, or (in "default") any tensor."""
        if name in self._outputs:
            return self._outputs[name]
        b = self._bound
        if b is None:
            raise Error(f"no inference has run on this request yet; cannot read '{name}'")
        prog = b.program
        if name in b.inputs:
            return b.inputs[name]
        if name in prog.known:
            return prog.known[name]
        if name in self._tensors:
            return self._tensors[name]
        if name in prog.infos:
            if b.plan.mode == "default" and name in b.plan.place:
                return self._array(b, name, b.buffers)
            raise DataRemovedError(name, b.plan.mode)
        raise InputError(f"no tensor named '{name}'; known outputs: {describe(prog.outputs)}")

    # ----------------------------------------------------------------- binding
    def _array(self, b: Bound, name: str, buffers: Sequence[np.ndarray | None]) -> np.ndarray:
        prog = b.program
        if name in prog.known:
            return prog.known[name]
        root = prog.root(name)
        if root in b.inputs:
            return b.inputs[root].reshape(prog.infos[name].dims)
        buf_i, off = b.plan.place[name]
        buf = buffers[buf_i]
        assert buf is not None, f"buffer {buf_i} of '{name}' is not allocated"
        return view(buf, off, prog.infos[name])

    def _allocate(self, b: Bound) -> None:
        arena = self._compiled.arena_for(self, b.plan)
        if arena is not None:
            b.buffers = [arena.buffer]
            b.arena_generation = arena.generation
        else:
            b.buffers = [aligned_empty(n) for n in b.plan.buffers]
        self._bind_steps(b)

    def _bind_steps(self, b: Bound) -> None:
        prog, plan = b.program, b.plan
        steps = []
        for step in prog.steps:
            ins = [None if not x else self._array(b, x, b.buffers) for x in step.inputs]
            outs = [None if not x else self._array(b, x, b.buffers) for x in step.outputs]
            scr = _scratch(step, plan.scratch[step.index], b.buffers)
            run = _run_fn(step)
            if step.kernel.bind is not None:  # views made once for these fixed buffers
                run = step.kernel.bind(ins, outs, scr)
            steps.append((run, ins, outs, scr))
        b.steps = steps

    def _bind(self, program: Program, plan: MemoryPlan) -> Bound:
        inputs = {}
        for name in program.inputs:
            info = program.infos[name]
            inputs[name] = view(aligned_empty(info.nbytes), 0, info)
        b = Bound(program, plan, [None] * len(plan.buffers), inputs)
        if not plan.dynamic and self._compiled.allocate_at_create:
            self._allocate(b)
        self._bound = b
        return b

    # --------------------------------------------------------------- inference
    def _infer(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        compiled = self._compiled
        arrays, infos = compiled.check_feeds(feeds)
        b = self._bound
        if b is None or b.program.signature != compiled.signature(infos):
            program, plan = compiled.plan_for_feeds(arrays, infos)
            b = self._bind(program, plan)
        for name, arr in arrays.items():
            np.copyto(b.inputs[name], arr)
        self._tensors = {}
        if b.plan.dynamic:
            self._run_dynamic(b)
        else:
            if b.plan.buffers and b.buffers and b.buffers[0] is None:
                self._allocate(b)  # first inference of a lazily allocated plan
            arena = compiled.arena_for(self, b.plan) if b.plan.arena else None
            if arena is not None:
                with arena.use():
                    if arena.generation != b.arena_generation:
                        b.buffers = [arena.buffer]
                        b.arena_generation = arena.generation
                        self._bind_steps(b)
                    self._run_static(b)
            else:
                self._run_static(b)
        self.inferences += 1
        return self._outputs

    def _zero(self, ranges: Sequence[tuple[int, int, int]], buffers: Sequence[np.ndarray | None]) -> None:
        for bi, off, nb in ranges:
            buf = buffers[bi]
            assert buf is not None
            buf[off:off + nb] = 0

    def _run_static(self, b: Bound) -> None:
        plan = b.plan
        self._zero(plan.zero_start, b.buffers)
        zero_before = plan.zero_before
        i = 0
        try:
            for i, (run, ins, outs, scr) in enumerate(b.steps):
                if zero_before[i]:
                    self._zero(zero_before[i], b.buffers)
                run(ins, outs, scr)
        except Error:
            raise
        except Exception as e:  # a kernel bug or numeric failure: name the node
            step = b.program.steps[i]
            raise KernelError(f"node '{step.node}' ({step.op_type}) failed: {type(e).__name__}: {e}") from e
        self.peak_live_bytes = sum(plan.buffers)
        self.allocations_last = 0
        self._collect(b, b.buffers)

    def _run_dynamic(self, b: Bound) -> None:
        plan = b.plan
        if b.recipe is None:
            b.recipe = _DynamicRecipe(self, b)
        rec = b.recipe
        sizes = plan.buffers
        buffers: list[np.ndarray | None] = [None] * len(sizes)
        cur = list(rec.fixed)  # every operand slot: a fixed array, a live view, or None
        views_of, slots_of = rec.views_of, rec.slots_of
        live = allocs = 0

        def allocate(bi: int) -> None:
            raw = buffers[bi] = aligned_empty(sizes[bi])
            for slot, start, stop, dtype, shape in views_of[bi]:
                cur[slot] = raw[start:stop].view(dtype).reshape(shape)

        for bi in plan.alloc_start:
            allocate(bi)
            live += sizes[bi]
            allocs += 1
        self._zero(plan.zero_start, buffers)
        peak = live
        step = None
        try:
            for step, run, in_slots, out_slots, scr_slots, alloc, zero, free in rec.steps:  # noqa: B007 (names a failure)
                for bi in alloc:
                    allocate(bi)
                    live += sizes[bi]
                    allocs += 1
                peak = max(peak, live)
                if zero:
                    self._zero(zero, buffers)
                run([cur[j] for j in in_slots], [cur[j] for j in out_slots],
                    cast(list[np.ndarray], [cur[j] for j in scr_slots]))
                for bi in free:  # drop the buffer and every view of it, so its memory goes back
                    buffers[bi] = None
                    for slot in slots_of[bi]:
                        cur[slot] = None
                    live -= sizes[bi]
        except Error:
            raise
        except Exception as e:
            assert step is not None
            raise KernelError(f"node '{step.node}' ({step.op_type}) failed: {type(e).__name__}: {e}") from e
        cur.clear()
        self.peak_live_bytes = peak
        self.allocations_last = allocs
        self._collect(b, buffers)

    def _collect(self, b: Bound, buffers: Sequence[np.ndarray | None]) -> None:
        prog = b.program
        self._outputs = {name: self._array(b, name, buffers) for name in prog.outputs}
        self._tensors = {
            name: self._array(b, name, buffers)
            for name in self._compiled.keep if name in prog.infos
        }


class _DynamicRecipe:
    """A dynamic plan's per-inference work with every name, offset and shape resolved once.

    Each step operand is a *slot*: constants and graph inputs fill theirs for good; a
    planned tensor's slot is set to a view when its buffer is allocated and cleared when
    the buffer is dropped (a view would keep the freed memory alive). An inference is then
    list indexing and three numpy calls per view instead of name lookups per operand
    (MobileNetV2: about 1.3 ms of views and lookups per inference before).
    """

    def __init__(self, request: InferRequest, b: Bound) -> None:
        prog, plan = b.program, b.plan
        slot: dict[object, int] = {}
        self.fixed: list[np.ndarray | None] = [None]  # slot 0 stays None: an omitted operand
        self.views_of: list[list[tuple[int, int, int, np.dtype, tuple[int, ...]]]] = [[] for _ in plan.buffers]
        self.slots_of: list[list[int]] = [[] for _ in plan.buffers]

        def place(key: object, bi: int, off: int, info: TensorInfo) -> int:
            if key not in slot:
                slot[key] = len(self.fixed)
                self.fixed.append(None)
                stop = off + info.nbytes
                self.views_of[bi].append((slot[key], off, stop, info.dtype, cast(tuple[int, ...], info.shape)))
                self.slots_of[bi].append(slot[key])
            return slot[key]

        def operand(name: str) -> int:
            if not name:
                return 0
            if name in slot:
                return slot[name]
            if name in prog.known or prog.root(name) in b.inputs:
                slot[name] = len(self.fixed)
                self.fixed.append(request._array(b, name, []))
                return slot[name]
            bi, off = plan.place[name]
            return place(name, bi, off, prog.infos[name])

        self.steps = []
        for step in prog.steps:
            i = step.index
            ins = [operand(x) for x in step.inputs]
            outs = [operand(x) for x in step.outputs]
            scr = [place((i, k), bi, off, info)
                   for k, ((bi, off), info) in enumerate(zip(plan.scratch[i], step.kernel.scratch))]
            self.steps.append((step, _run_fn(step), ins, outs, scr, plan.alloc_before[i], plan.zero_before[i],
                               plan.free_after[i]))


def describe_feed(name: str, info: TensorInfo) -> str:
    return f"'{name}' ({info.dtype.name}{shape_str(info.shape)})"
