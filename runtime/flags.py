"""Environment-backed switches, read once and overridable in tests.

A leaf module: it imports nothing from the package.

- ``MEMGATE_DEBUG``: 0 quiet, 1 prints pass and planner summaries, 2 per-step detail.
- ``MEMGATE_DISABLE_PASSES``: comma-separated pass names to skip (see ``runtime.passes.PASSES``).
- ``MEMGATE_NO_CACHE``: 1 turns the compiled-model cache off (``Core.supports("model_caching")``
  answers False and ``cache_dir`` is ignored).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


DEBUG: int = _int_env("MEMGATE_DEBUG", 0)
NO_CACHE: bool = bool(_int_env("MEMGATE_NO_CACHE", 0))
DISABLE_PASSES: frozenset[str] = frozenset(
    p.strip() for p in os.environ.get("MEMGATE_DISABLE_PASSES", "").split(",") if p.strip()
)


@contextlib.contextmanager
def override(**values: Any) -> Iterator[None]:
    """Temporarily set module-level switches, e.g. ``override(DEBUG=2)``."""
    module = sys.modules[__name__]
    unknown = [k for k in values if not k.isupper() or not hasattr(module, k)]
    if unknown:
        raise AttributeError(f"unknown flag(s) {unknown}")
    old = {k: getattr(module, k) for k in values}
    for key, value in values.items():
        setattr(module, key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            setattr(module, key, value)


def debug(level: int, message: str) -> None:
    """Print ``message`` to stderr when the debug level is at least ``level``."""
    if DEBUG >= level:
        print(f"[runtime] {message}", file=sys.stderr)
