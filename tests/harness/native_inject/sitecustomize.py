"""Test-only native leaks in a harness child (found on PYTHONPATH as sitecustomize), instead of the bytearray.

``MEMGATE_TEST_NATIVE_LEAK`` says how ``stress_tests.pipelines.inject_leak`` keeps its bytes:

- ``ext:DIR``: through ``leakext.leak(n)``, a C extension the test built in DIR (malloc through the PLT);
- ``lib:PATH``: through ``leak_bytes(n)`` of a plain shared library, called with ctypes;
- ``libc``: through libc's ``malloc`` itself, called with ctypes (a function pointer: no PLT);
- ``retain``: keeps nothing: each iteration touches and frees a buffer 1 x nbytes larger than the
  last, so an allocator that keeps freed memory grows RSS while the live heap stays flat (retention).

Neither tracemalloc nor the bytearray path sees any of them: only the heap counter and native tracing.
"""

from __future__ import annotations

import os
import sys

_HOW = os.environ.get("MEMGATE_TEST_NATIVE_LEAK", "")


def _install(how: str) -> None:
    import ctypes

    from stress_tests import pipelines

    kind, _, where = how.partition(":")
    if kind == "retain":
        grown = [0]

        def keep(n: int) -> None:
            grown[0] += n
            buf = bytearray(b"\x5a") * grown[0]  # touched, then freed at once
            del buf
    elif kind == "ext":
        sys.path.insert(0, where)
        import leakext  # type: ignore[import-not-found]

        keep = leakext.leak
    elif kind in ("lib", "libc"):
        lib = ctypes.CDLL(where if kind == "lib" else None)
        fn = lib.leak_bytes if kind == "lib" else lib.malloc
        fn.restype, fn.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        kept: list[int] = []

        def keep(n: int) -> None:
            kept.append(fn(n))
    else:
        raise ValueError(f"MEMGATE_TEST_NATIVE_LEAK={how!r}: use ext:DIR, lib:PATH, libc or retain")

    def inject_leak(store: list[bytearray], nbytes: int) -> None:
        if nbytes:
            keep(nbytes)

    pipelines.inject_leak = inject_leak


if _HOW:
    _install(_HOW)
