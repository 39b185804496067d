"""memgate's own runtime (``runtime``): every memory mode, the compile cache, the shared arena."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import MODES, Adapter

if TYPE_CHECKING:
    import numpy as np

    from ..spec import CoreOptions


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

    def release(self, compiled: Sequence[Any] = ()) -> dict[str, Any]:
        release = getattr(self.rt, "release_memory", None)  # gc + malloc_trim where the runtime offers it
        return dict(release()) if release is not None else super().release(compiled)

    def memory_stats(self, compiled: Any) -> dict[str, Any]:
        stats = getattr(compiled, "memory_stats", None)
        return dict(stats()) if stats is not None else {}

    def compile_info(self, compiled: Any) -> dict[str, Any]:
        return dict(getattr(compiled, "compile_info", None) or {})
