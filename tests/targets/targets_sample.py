"""Targets the target-cell tests run: leaks, a clean call, a class with setup and close, and failures.

Standard library only: a target child under another interpreter imports nothing else.
"""

from __future__ import annotations

import ctypes
import sys

KEPT: list[bytes] = []
CALLS = [0]
NOT_CALLABLE = 42

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


def keeps_16k() -> None:
    """A Python leak: 16 KiB of touched bytes kept in a module-level list per call."""
    KEPT.append(b"x" * 16384)


def mallocs(size: int = 65536) -> None:
    """A native leak: malloc never freed, memset so the pages are resident (tracemalloc sees nothing)."""
    ctypes.memset(_libc.malloc(size), 1, size)


def clean(size: int = 65536) -> None:
    """Allocates and frees: no growth."""
    data = b"y" * size
    del data


class Service:
    """Setup allocates a buffer of ``size`` bytes; each call uses it; close() frees it."""

    def __init__(self, size: int = 4 << 20, label: str = "") -> None:
        self.buffer = bytearray(b"z" * size)
        self.label = label
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1

    def close(self) -> None:
        self.buffer = bytearray()


class NoCall:
    """A class whose instances cannot be called."""


def raises_on_fifth() -> None:
    CALLS[0] += 1
    if CALLS[0] == 5:
        raise ValueError("the fifth call fails")


def segfaults_on_third() -> None:
    CALLS[0] += 1
    if CALLS[0] == 3:
        ctypes.string_at(0)  # reads address 0: SIGSEGV


def hangs_on_second() -> None:
    import time

    CALLS[0] += 1
    while CALLS[0] == 2:
        time.sleep(60)


def exits() -> None:
    sys.exit(3)


def takes(size: int, name: str) -> None:
    """Checks that --target-arg values arrive as Python literals (an int) or strings."""
    if not (isinstance(size, int) and isinstance(name, str)):
        raise TypeError(f"size {size!r} name {name!r}")
