"""The Adapter interface: the only way the harness touches a runtime (public API, see docs/adapters.md).

A pipeline is a sequence of steps; each step calls one method here. A subclass implements the
four abstract methods and overrides the others where its runtime has the stage. Adapters are
constructed inside the measured child, so ``__init__`` is where the runtime is imported.
"""

from __future__ import annotations

import gc
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child imports numpy through the runtime, never through this module
    import numpy as np

    from ..spec import CoreOptions

#: memgate's memory modes; a runtime declares the subset it runs in ``Adapter.modes``.
MODES = ("default", "reduce", "reuse", "arena")
#: Features a pipeline may need (``Case.needs``); an adapter lists the ones it has.
FEATURES = ("cache_dir", "static_memory_policy", "memory_stats", "threads")


class AdapterError(RuntimeError):
    """A runtime cannot do what the cell asks (unknown runtime, unsupported mode or feature)."""


class Adapter(ABC):
    """Create core, read model, compile, create request, infer, release.

    Class attributes: ``name`` (the ``--runtime`` name), ``modes`` (memory modes it runs),
    ``features`` (from ``FEATURES``: what pipelines needing them may ask).
    """

    name = ""
    modes: tuple[str, ...] = ("default",)
    features: frozenset[str] = frozenset()

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise AdapterError(f"{self.name} has no memory mode {mode!r}; it runs {list(self.modes)}")

    @classmethod
    def environment(cls, allocator: str) -> dict[str, str]:
        """Environment variables the child needs under ``allocator`` (set by the parent, recorded in
        the result). Called in the parent without constructing the adapter, so it must not import
        the runtime. A value the caller already set is kept."""
        return {}

    @classmethod
    def crash_hint(cls, allocator: str, stderr: str) -> str:
        """A sentence for a child of this runtime that died under ``allocator``; empty for none."""
        return ""

    @abstractmethod
    def version(self) -> str:
        """The runtime's version, for results and ``memgate doctor``."""

    @abstractmethod
    def create_core(self, options: CoreOptions) -> Any:
        """The runtime's long-lived object (or ``options`` itself where there is none)."""

    def read_model(self, core: Any, path: str) -> Any:
        """Parse the model; runtimes without a separate read stage return the path."""
        return path

    @abstractmethod
    def compile(self, core: Any, model: Any, mode: str) -> Any:
        """Compile a read model or a path in memory mode ``mode``."""

    def compile_streams(self, core: Any, model: Any, mode: str, streams: int) -> tuple[Any, int]:
        """Compile for ``streams`` parallel streams: (compiled, how many requests to create).

        Runtimes without streams compile once and serve ``streams`` requests from it."""
        return self.compile(core, model, mode), streams

    def create_request(self, compiled: Any) -> Any:
        return compiled

    @abstractmethod
    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        """Run one inference; returns the outputs (kept by the pipeline until the next release)."""

    def release(self, compiled: Sequence[Any] = ()) -> dict[str, Any]:
        """Give freed memory back where the runtime knows how, after the pipeline dropped its
        references; ``compiled`` are the compiled models that stay alive."""
        return {"gc_collected": gc.collect()}

    def memory_stats(self, compiled: Any) -> dict[str, Any]:
        return {}

    def compile_info(self, compiled: Any) -> dict[str, Any]:
        """Facts about one compile; ``{"cache": "hit" | "miss" | ...}`` feeds the cache checks."""
        return {}
