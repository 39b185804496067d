"""onnxruntime's CPU execution provider, one thread.

It has no memory modes of its own; its closest knobs are mapped: ``default``/``arena`` = CPU
arena and memory patterns on (its defaults), ``reuse`` = patterns on, arena off, ``reduce`` =
both off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .base import MODES, Adapter, AdapterError

if TYPE_CHECKING:
    import numpy as np

    from ..spec import CoreOptions


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
