"""memgate's harness: runs models in isolated processes and decides whether memory leaks."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _runtime_version() -> str:
    """The distribution's version, read from runtime/version.py without importing the runtime.

    Importing ``runtime`` registers every kernel (about half a second); the pytest plugin
    imports this package in every pytest session, so it must stay light.
    """
    spec = importlib.util.find_spec("runtime")
    if spec is None or spec.origin is None:
        return "0+unknown"
    path = Path(spec.origin).with_name("version.py")
    loader = importlib.util.spec_from_file_location("_memgate_version", path)
    if loader is None or loader.loader is None:
        return "0+unknown"
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return str(module.__version__)


__version__ = _runtime_version()

__all__ = ["__version__"]
