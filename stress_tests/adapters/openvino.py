"""OpenVINO's CPU plugin (``pip install memgate[openvino]``, openvino 2024.0 or newer).

memgate's Core options map onto OpenVINO properties: ``enable_mmap`` -> ``props.enable_mmap``,
``cache_dir`` -> ``props.cache_dir`` (both on the Core), ``compile_threads`` ->
``props.compilation_num_threads`` where the CPU plugin lists it among its supported properties
(a note says so where it does not), one inference thread and one stream unless a pipeline
asks for streams. ``release`` calls ``CompiledModel.release_memory()`` (2024.1+) on the
compiled models that stay alive. OpenVINO has no memory modes: ``default`` only.

Under a preloaded jemalloc, tcmalloc or mimalloc the wheel's oneTBB dlopens libtbbbind with
RTLD_DEEPBIND, so hwloc inside it frees with glibc what the preloaded allocator gave it and the
process aborts when the CPU plugin loads ("free(): invalid pointer"; oneTBB#1636,
openvino#29025). ``TBB_ENABLE_SANITIZERS=1`` makes oneTBB load it without RTLD_DEEPBIND:
``environment`` asks the parent to set it for those cells, and the result records it.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import Adapter, AdapterError

if TYPE_CHECKING:
    import numpy as np

    from ..spec import CoreOptions

DEVICE = "CPU"
#: The workaround for oneTBB's RTLD_DEEPBIND load of libtbbbind under a preloaded allocator.
DEEPBIND_WORKAROUND = {"TBB_ENABLE_SANITIZERS": "1"}


class OpenVINO(Adapter):
    name = "openvino"
    modes = ("default",)
    features = frozenset({"cache_dir", "threads"})

    def __init__(self) -> None:
        try:
            import openvino as ov
            import openvino.properties as props
        except ImportError as e:
            raise AdapterError("openvino is not installed; install it with `pip install memgate[openvino]` "
                               "(or `pip install openvino`)") from e
        self.ov, self.props = ov, props
        self.notes: list[str] = []

    @classmethod
    def environment(cls, allocator: str) -> dict[str, str]:
        return dict(DEEPBIND_WORKAROUND) if allocator != "glibc" else {}

    @classmethod
    def crash_hint(cls, allocator: str, stderr: str) -> str:
        if allocator == "glibc":
            return ""
        return ("openvino's oneTBB loads libtbbbind with RTLD_DEEPBIND, so memory from the preloaded "
                f"{allocator} reaches glibc's free(); set TBB_ENABLE_SANITIZERS=1 (memgate sets it unless the "
                "environment already has another value) or run the cell under glibc")

    def version(self) -> str:
        return str(self.ov.__version__)

    def create_core(self, options: CoreOptions) -> Any:
        p = self.props
        core = self.ov.Core()
        config: dict[str, Any] = {p.enable_mmap(): bool(options.enable_mmap)}
        if options.cache_dir is not None:
            config[p.cache_dir()] = str(options.cache_dir)
        core.set_property(config)
        if options.compile_threads is not None:
            supported = core.get_property(DEVICE, p.supported_properties())
            if p.compilation_num_threads() in supported:
                core.set_property(DEVICE, {p.compilation_num_threads(): int(options.compile_threads)})
            else:
                release = self.version().split("-")[0]
                self._note(f"openvino {release}: the CPU plugin has no {p.compilation_num_threads()} property; "
                           f"compile_threads={options.compile_threads} was not applied")
        return core

    def read_model(self, core: Any, path: str) -> Any:
        return core.read_model(path)

    def _config(self, streams: int) -> dict[str, Any]:
        p = self.props
        # One inference thread per stream keeps figures comparable with the other runtimes.
        return {p.inference_num_threads(): streams, p.num_streams(): streams}

    def compile(self, core: Any, model: Any, mode: str) -> Any:
        self.check_mode(mode)
        return core.compile_model(model, DEVICE, self._config(1))

    def compile_streams(self, core: Any, model: Any, mode: str, streams: int) -> tuple[Any, int]:
        self.check_mode(mode)
        compiled = core.compile_model(model, DEVICE, self._config(streams))
        try:
            requests = int(compiled.get_property(self.props.optimal_number_of_infer_requests()))
        except RuntimeError:  # as OpenVINO's own test does: fall back to one request per stream
            requests = streams
        return compiled, max(1, requests)

    def create_request(self, compiled: Any) -> Any:
        return compiled.create_infer_request()

    def infer(self, request: Any, feeds: Mapping[str, np.ndarray]) -> Any:
        return request.infer(dict(feeds))

    def release(self, compiled: Sequence[Any] = ()) -> dict[str, Any]:
        released = 0
        for c in compiled:
            release = getattr(c, "release_memory", None)  # 2024.1+
            if release is not None:
                release()
                released += 1
        return {"gc_collected": gc.collect(), "release_memory": released}

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
