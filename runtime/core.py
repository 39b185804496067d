"""Core, CompiledModel and MemoryConfig: the public entry points of the runtime."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from . import flags
from .arena import Arena
from .cache import ModelCache, external_files
from .errors import ConfigError, InputError
from .executor import InferRequest
from .frontend import Model, ModelSource, to_graph
from .frontend.loader import digest_of, model_digest, model_from_bytes, read_file
from .frontend.loader import read_model as _read_model
from .ir import Dim, Graph, TensorInfo, describe, shape_str
from .lowering import Program, Signature, lower, signature_of
from .memory import MODES, MemoryPlan, plan_memory
from .passes import PassContext, run_passes
from .release import _malloc_trim, release_memory


def _load(source: Any) -> Model:
    if isinstance(source, _FileBytes):
        return model_from_bytes(source.data, source.path)
    return _read_model(source)


@dataclass(frozen=True)
class MemoryConfig:
    """Ascend-style memory options.

    - ``atomic_clean_policy``: 0 zeroes every memset output together at the start of each
      inference (one fill, those buffers live all inference); 1 zeroes each just before its
      kernel (lower peak, more fills).
    - ``static_memory_policy``: 0 each compiled model sizes its own memory; 1/2 all compiled
      models of a Core share one arena sized to the largest graph; 3 arenas grow in size
      classes for changing input shapes; 4 both.
    """

    atomic_clean_policy: int = 0
    static_memory_policy: int = 0

    def __post_init__(self) -> None:
        if self.atomic_clean_policy not in (0, 1):
            raise ConfigError(f"atomic_clean_policy must be 0 or 1, got {self.atomic_clean_policy!r}")
        if self.static_memory_policy not in (0, 1, 2, 3, 4):
            raise ConfigError(f"static_memory_policy must be 0..4, got {self.static_memory_policy!r}")

    @property
    def shared_arena(self) -> bool:
        return self.static_memory_policy in (1, 2, 4)

    @property
    def size_classes(self) -> bool:
        return self.static_memory_policy in (3, 4)


@dataclass(frozen=True)
class Port:
    """A model input or output: name, dtype, shape (symbolic dims as names, unknown as None)."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...]

    def __repr__(self) -> str:
        return f"Port({self.name!r}, {self.dtype.name}{shape_str(self.shape)})"


_PROPERTIES = ("enable_mmap", "cache_dir", "compile_threads", "memory_config", "trim_on_release", "cache_verify")


class Core:
    """Holds options and, under static_memory_policy 1/2/4, the arena shared by its models."""

    def __init__(
        self, *, enable_mmap: bool = True, cache_dir: str | os.PathLike | None = None,
        compile_threads: int | None = None, memory_config: MemoryConfig | None = None,
        trim_on_release: bool = False, cache_verify: str = "header",
    ) -> None:
        self._props: dict[str, Any] = {}
        self._cache: ModelCache | None = None
        self.set_property({
            "enable_mmap": enable_mmap, "cache_dir": cache_dir, "compile_threads": compile_threads,
            "memory_config": memory_config or MemoryConfig(), "trim_on_release": trim_on_release,
            "cache_verify": cache_verify,
        })

    # -------------------------------------------------------------- properties
    def get_property(self, name: str) -> Any:
        if name not in self._props:
            raise ConfigError(f"unknown property {name!r}; known: {list(_PROPERTIES)}")
        return self._props[name]

    def set_property(self, props: Mapping[str, Any]) -> None:
        for name, value in props.items():
            if name not in _PROPERTIES:
                raise ConfigError(f"unknown property {name!r}; known: {list(_PROPERTIES)}")
            self._props[name] = self._validate(name, value)
        if "memory_config" in props:
            cfg: MemoryConfig = self._props["memory_config"]
            self._shared_arena = Arena(size_classes=cfg.size_classes, shared=True) if cfg.shared_arena else None

    @staticmethod
    def _validate(name: str, value: Any) -> Any:
        if name in ("enable_mmap", "trim_on_release"):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            return value
        if name == "compile_threads":
            if value is None:
                return os.cpu_count() or 1
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"compile_threads must be a positive int, got {value!r}")
            return value
        if name == "memory_config":
            if not isinstance(value, MemoryConfig):
                raise ConfigError(f"memory_config must be a runtime.MemoryConfig, got {type(value).__name__}")
            return value
        if name == "cache_dir":
            return None if value is None else os.fspath(value)
        if name == "cache_verify":
            if value not in ("header", "full"):
                raise ConfigError(f"cache_verify must be 'header' or 'full', got {value!r}")
            return value
        return value

    @property
    def memory_config(self) -> MemoryConfig:
        return self._props["memory_config"]

    @property
    def shared_arena(self) -> Arena | None:
        return self._shared_arena

    # ------------------------------------------------------------------ models
    def read_model(self, source: ModelSource) -> Model:
        """Read a model from a path, bytes or an onnx.ModelProto."""
        return _read_model(source)

    def compile_model(
        self, model: ModelSource, *, memory_mode: str | None = None, keep: Iterable[str] = (),
        reduce_constant: bool = True, ignore_input_with_initializer: bool = True,
        disable_passes: Iterable[str] = (), input_shapes: Mapping[str, Iterable[int]] | None = None,
    ) -> CompiledModel:
        """Compile a Model, path, bytes or ModelProto under a memory mode (default ``"default"``).

        ``keep`` names intermediates that stay readable after inference; ``input_shapes``
        fixes symbolic input dims at compile time so memory is planned before the first run.
        With ``cache_dir`` set, a compiled blob is imported when present (a path is then not
        even parsed) and exported after a cold compile.
        """
        start = time.perf_counter()
        mode = self._resolve_mode(memory_mode)
        keep = tuple(keep)
        disable = frozenset(disable_passes) | flags.DISABLE_PASSES
        shapes = None if not input_shapes else {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}
        cache = self._model_cache()
        info: dict[str, Any] = {"cache": "off"}
        key = None
        if cache is not None:
            model, digest, base_dir = _source_digest(model)
            key = cache.key(digest, {
                "memory_mode": mode, "keep": sorted(keep), "disable_passes": sorted(disable),
                "ignore_input_with_initializer": ignore_input_with_initializer, "input_shapes": shapes,
                "atomic_clean_policy": self.memory_config.atomic_clean_policy,
                "static_memory_policy": self.memory_config.static_memory_policy,
            })
            hit = cache.load(key, mmap_weights=self._props["enable_mmap"], base_dir=base_dir)
            if hit is not None:
                compiled = CompiledModel(self, hit.graph, mode=mode, keep=keep, preplanned=hit.plan)
                compiled.compile_info = {"cache": "hit", "blob": str(cache.path(key)),
                                         "seconds": time.perf_counter() - start}
                return compiled
            info = {"cache": "miss"}
        m = _load(model)
        threads = self._props["compile_threads"]
        with ThreadPoolExecutor(threads, thread_name_prefix="compile") if threads > 1 else _no_pool() as pool:
            graph = to_graph(m, mmap=self._props["enable_mmap"],
                             ignore_input_with_initializer=ignore_input_with_initializer, pool=pool)
            graph = _apply_input_shapes(graph, shapes)
            missing = [k for k in keep if not _defines(graph, k)]
            if missing:
                raise ConfigError(f"keep names unknown tensor(s) {describe(missing)}")
            ctx = PassContext(protected=frozenset(keep), input_infos={v.name: v.info for v in graph.inputs}, pool=pool)
            graph = run_passes(graph, ctx, disable)
        compiled = CompiledModel(self, graph, mode=mode, keep=keep, pass_stats=ctx.stats,
                                 source=m if not reduce_constant else None)
        if cache is not None and key is not None and m.proto is not None:
            externals = external_files(m.proto, m.base_dir)
            exported = cache.store(key, compiled.graph, compiled.static_plan, externals, m.base_dir)
            info = {"cache": "miss" if exported is not None else "error", "blob": str(cache.path(key)),
                    "export_seconds": exported}
        if reduce_constant and m.source != "proto":
            m.release()
        info["seconds"] = time.perf_counter() - start
        compiled.compile_info = info
        return compiled

    def _model_cache(self) -> ModelCache | None:
        directory = self._props["cache_dir"]
        if directory is None or not self.supports("model_caching"):
            return None
        if self._cache is None or self._cache.directory != Path(directory):
            self._cache = ModelCache(Path(directory), verify=self._props["cache_verify"])
        self._cache.verify = self._props["cache_verify"]
        return self._cache

    def _resolve_mode(self, memory_mode: str | None) -> str:
        policy = self.memory_config.static_memory_policy
        if memory_mode is None:
            return "arena" if policy else "default"
        if memory_mode not in MODES:
            raise ConfigError(f"unknown memory_mode {memory_mode!r}; choose one of {list(MODES)}")
        if policy and memory_mode != "arena":
            raise ConfigError(
                f"static_memory_policy={policy} plans memory in an arena; use memory_mode='arena' (or leave it unset)"
            )
        return memory_mode

    def supports(self, feature: str) -> bool:
        """Whether an optional capability is available here: check in advance, then use it.

        ``"model_caching"`` is False when ``MEMGATE_NO_CACHE=1``; ``cache_dir`` is then ignored.
        """
        if feature == "model_caching":
            return not flags.NO_CACHE
        if feature == "malloc_trim":
            return _malloc_trim() is not None
        return feature in ("memory_modes", "static_memory_policy", "mmap")


@contextlib.contextmanager
def _no_pool() -> Iterator[None]:
    yield None


def _source_digest(model: ModelSource) -> tuple[ModelSource, str, Path | None]:
    """(what to compile on a miss, the digest of the model bytes, the folder for external data).

    A path is read and hashed but not parsed, so a cache hit never touches protobuf.
    """
    if isinstance(model, Model):
        return model, model_digest(model), model.base_dir
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        data = read_file(path)
        return _FileBytes(data, path), digest_of(data), path.resolve().parent
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), digest_of(model), None
    if isinstance(model, onnx.ModelProto):
        return model, digest_of(model.SerializeToString()), None
    return model, "", None


@dataclass
class _FileBytes:
    """A model file read once for its digest; parsed only on a cache miss."""

    data: bytes
    path: Path


def _defines(graph: Graph, name: str) -> bool:
    return name in graph.constants or name in graph.input_names or any(name in n.outputs for n in graph.nodes)


def _apply_input_shapes(graph: Graph, shapes: Mapping[str, Iterable[int]] | None) -> Graph:
    if not shapes:
        return graph
    inputs = []
    names = set(graph.input_names)
    unknown = set(shapes) - names
    if unknown:
        raise ConfigError(f"input_shapes names unknown input(s) {describe(unknown)}; inputs: {describe(names)}")
    for v in graph.inputs:
        if v.name in shapes:
            shape = tuple(int(d) for d in shapes[v.name])
            declared = v.info.shape
            if declared != (None,) and (len(declared) != len(shape) or any(
                    isinstance(d, int) and d != s for d, s in zip(declared, shape))):
                raise ConfigError(f"input_shapes[{v.name!r}]={list(shape)} conflicts with declared {shape_str(declared)}")
            v = type(v)(v.name, TensorInfo(v.info.dtype, shape))
        inputs.append(v)
    return graph.replace(inputs=inputs)


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
        static = {v.name: v.info for v in graph.inputs}
        if all(i.static and i.shape != (None,) for i in static.values()):
            self.static_program, self.static_plan = self.plan_for(static, preplanned)
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

    def plan_for(self, infos: dict[str, TensorInfo], preplanned: MemoryPlan | None = None) -> tuple[Program, MemoryPlan]:
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

    def arena_for(self, request: InferRequest, plan: MemoryPlan) -> Arena | None:
        """The arena a request's plan runs in, reserved large enough; None for private buffers."""
        if not plan.arena:
            return None
        cfg = self.memory_config
        need = plan.buffers[0]
        if cfg.shared_arena:
            arena = self.core.shared_arena
        elif cfg.size_classes:
            arena = getattr(request, "_arena", None)
            if arena is None:
                arena = Arena(size_classes=True, shared=False)
                request._arena = arena  # type: ignore[attr-defined]
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
            want = f"{expect.dtype.name}{shape_str(expect.shape)}"
            if v.name in feeds:
                raw = feeds[v.name]
                if isinstance(raw, np.ndarray):
                    arr = raw
                else:
                    try:
                        arr = np.asarray(raw, dtype=expect.dtype)
                    except (TypeError, ValueError) as e:
                        raise InputError(f"input '{v.name}': cannot convert to {want}: {e}") from e
            elif v.name in self.graph.defaults:
                arr = self.graph.defaults[v.name]
            else:
                raise InputError(f"missing input '{v.name}' ({want}); feeds given: {describe(feeds)}")
            if arr.dtype != expect.dtype:
                raise InputError(f"input '{v.name}' has dtype {arr.dtype.name}; expected {want}")
            if expect.shape != (None,):
                if arr.ndim != len(expect.shape):
                    raise InputError(f"input '{v.name}' has shape {list(arr.shape)}; expected {want}")
                for axis, (d, s) in enumerate(zip(expect.shape, arr.shape)):
                    if isinstance(d, int) and d != s:
                        raise InputError(f"input '{v.name}' has shape {list(arr.shape)}; expected {want}")
                    if isinstance(d, str):
                        seen = symbols.setdefault(d, (int(s), v.name))
                        if seen[0] != s:
                            raise InputError(
                                f"input '{v.name}' axis {axis} is {s} but dim '{d}' is {seen[0]} in input '{seen[1]}'"
                            )
            arrays[v.name] = arr
            infos[v.name] = TensorInfo(arr.dtype, tuple(int(d) for d in arr.shape))
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
        measured = req is not None and req.inferences > 0
        stats.update(
            intermediate_bytes=plan.intermediate_bytes,
            lower_bound_bytes=plan.lower_bound,
            arena_bytes=plan.buffers[0] if plan.arena else 0,
            peak_live_bytes=req.peak_live_bytes if measured else None,
            allocations_per_inference=req.allocations_last if measured else plan.allocations_per_inference,
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
        return (f"compiled {self.graph.name}: {len(program.steps)} steps, mode {plan.mode}: "
                f"memory reduced from {sum(program.infos[t].nbytes for t in plan.place) / 2**20:.1f} MB "
                f"to {plan.intermediate_bytes / 2**20:.1f} MB (lower bound {plan.lower_bound / 2**20:.1f} MB)")
