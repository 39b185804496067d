"""memgate's runtime: a compact numpy ONNX inference runtime with selectable memory modes.

    import runtime as rt
    core = rt.Core()
    compiled = core.compile_model("model.onnx", memory_mode="arena")
    out = compiled.infer({"input": x})
"""

from __future__ import annotations

from . import ops as _ops  # noqa: F401  (registers every kernel)
from .compiled import CompiledModel, Port
from .config import MemoryConfig
from .core import Core
from .errors import (
    CacheWarning,
    ConcurrencyError,
    ConfigError,
    DataRemovedError,
    Error,
    GraphError,
    InputError,
    KernelError,
    ModelLoadError,
    ShapeError,
    UnsupportedOperatorError,
)
from .executor import InferRequest
from .frontend import Model
from .memory import MODES as MEMORY_MODES
from .release import release_memory
from .version import __version__

__all__ = [
    "MEMORY_MODES", "CacheWarning", "CompiledModel", "ConcurrencyError", "ConfigError", "Core", "DataRemovedError",
    "Error", "GraphError", "InferRequest", "InputError", "KernelError", "MemoryConfig", "Model",
    "ModelLoadError", "Port", "ShapeError", "UnsupportedOperatorError", "__version__", "release_memory",
]
