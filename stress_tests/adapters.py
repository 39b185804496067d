"""One small interface over the runtimes under test, so the same pipelines measure them all.

``builtin`` is memgate's runtime; ``onnxruntime`` and ``reference`` (onnx's ReferenceEvaluator)
are peers, imported only when asked for. Each stage of a pipeline is one method here.

The peers have no memory modes of their own; onnxruntime's closest knobs are mapped:
``default``/``arena`` = CPU arena and memory patterns on (its defaults), ``reuse`` = patterns
on, arena off, ``reduce`` = both off. The reference evaluator runs ``default`` only.
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from .spec import CoreOptions

MODES = ("default", "reduce", "reuse", "arena")


class AdapterError(RuntimeError):
    """A runtime cannot do what the cell asks (unknown runtime, unsupported mode or feature)."""


class Adapter(ABC):
    """Create core, read model, compile, create request, infer, release."""

    name = ""
    modes: tuple[str, ...] = ("default",)
    features: frozenset[str] = frozenset()  # "cache_dir", "static_memory_policy", "memory_stats"

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise AdapterError(f"{self.name} has no memory mode {mode!r}; it runs {list(self.modes)}")

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def create_core(self, options: CoreOptions) -> Any: ...

    def read_model(self, core: Any, path: str) -> Any:
        """Parse the model; peers without a separate read stage return the path."""
        return path

    @abstractmethod
    def compile(self, core: Any, model: Any, mode: str) -> Any:
        """Compile a read model or a path."""

    def create_request(self, compiled: Any) -> Any:
        return compiled

    @abstractmethod
    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any: ...

    def release(self) -> dict[str, Any]:
        """Give freed memory back where the runtime knows how (after references were dropped)."""
        return {"gc_collected": gc.collect()}

    def memory_stats(self, compiled: Any) -> dict[str, Any]:
        return {}

    def compile_info(self, compiled: Any) -> dict[str, Any]:
        return {}


class Builtin(Adapter):
    name = "builtin"
    modes = MODES
    features = frozenset({"cache_dir", "static_memory_policy", "memory_stats", "threads"})

    def __init__(self) -> None:
        import runtime as rt

        self.rt = rt
        self.modes = tuple(getattr(rt, "MEMORY_MODES", MODES))

    def version(self) -> str:
        return str(self.rt.__version__)

    def create_core(self, options: CoreOptions) -> Any:
        rt = self.rt
        config = rt.MemoryConfig(atomic_clean_policy=options.atomic_clean_policy,
                                 static_memory_policy=options.static_memory_policy)
        return rt.Core(enable_mmap=options.enable_mmap, cache_dir=options.cache_dir,
                       compile_threads=options.compile_threads, memory_config=config,
                       trim_on_release=options.trim_on_release)

    def read_model(self, core: Any, path: str) -> Any:
        return core.read_model(path)

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.check_mode(mode)
        return core.compile_model(model, memory_mode=mode)

    def create_request(self, compiled: Any) -> Any:
        return compiled.create_infer_request()

    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        return request.infer(feeds)

    def release(self) -> dict[str, Any]:
        release = getattr(self.rt, "release_memory", None)  # gc + malloc_trim where the runtime offers it
        return dict(release()) if release is not None else super().release()

    def memory_stats(self, compiled: Any) -> dict[str, Any]:
        stats = getattr(compiled, "memory_stats", None)
        return dict(stats()) if stats is not None else {}

    def compile_info(self, compiled: Any) -> dict[str, Any]:
        return dict(getattr(compiled, "compile_info", None) or {})


class OnnxRuntime(Adapter):
    name = "onnxruntime"
    modes = MODES
    features = frozenset({"threads"})
    _KNOBS = {"default": (True, True), "arena": (True, True), "reuse": (False, True), "reduce": (False, False)}

    def __init__(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise AdapterError("onnxruntime is not installed; install it with `pip install onnxruntime`") from e
        self.ort = ort

    def version(self) -> str:
        return str(self.ort.__version__)

    def create_core(self, options: CoreOptions) -> Any:
        return options

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.check_mode(mode)
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = 1  # one thread: comparable with the built-in runtime
        so.inter_op_num_threads = 1
        so.enable_cpu_mem_arena, so.enable_mem_pattern = self._KNOBS[mode]
        return self.ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        return request.run(None, dict(feeds))


class Reference(Adapter):
    name = "reference"
    modes = ("default",)

    def __init__(self) -> None:
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator

    def version(self) -> str:
        import onnx

        return str(onnx.__version__)

    def create_core(self, options: CoreOptions) -> Any:
        return options

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.check_mode(mode)
        return self.evaluator(model)

    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        return request.run(None, dict(feeds))


ADAPTERS: dict[str, type[Adapter]] = {"builtin": Builtin, "onnxruntime": OnnxRuntime, "reference": Reference}
RUNTIMES = tuple(ADAPTERS)


def get_adapter(name: str) -> Adapter:
    """An adapter by runtime name; the peer is imported here, not before."""
    try:
        cls = ADAPTERS[name]
    except KeyError:
        raise AdapterError(f"unknown runtime {name!r}; choose one of {list(RUNTIMES)}") from None
    return cls()
