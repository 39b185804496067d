"""Giving freed memory back to the operating system (OpenVINO's malloc_trim advice)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_memory(collect: bool = True) -> dict[str, Any]:
    """Run the garbage collector and, under glibc, ``malloc_trim(0)``.

    Returns what was done: ``{"gc_collected": int|None, "malloc_trim": bool|None, "note": str}``;
    ``malloc_trim`` is None (and the note says so) where glibc is not available. Under an
    LD_PRELOADed allocator the call still reaches glibc's own heap, which is harmless.
    """
    collected = gc.collect() if collect else None
    trim = _malloc_trim()
    if trim is None:
        return {"gc_collected": collected, "malloc_trim": None,
                "note": "malloc_trim is unavailable here (not glibc); only the garbage collector ran"}
    released = bool(trim(0))
    return {"gc_collected": collected, "malloc_trim": released,
            "note": "malloc_trim(0) released memory" if released else "malloc_trim(0) had nothing to release"}
