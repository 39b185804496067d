"""Arenas that outlive one plan: the Core-wide shared arena and size-class growth.

``static_memory_policy`` (Ascend's MemoryConfig):
- 1 and 2: one arena shared by every compiled model of a Core, sized to the largest
  graph; a larger graph releases the old arena and allocates the larger one.
- 3: each request's arena grows in size classes, so changing input shapes reuse it.
- 4: both: a shared arena that grows in size classes.
A shared arena serves one inference at a time; a second concurrent one raises
``ConcurrencyError`` instead of corrupting memory.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator

import numpy as np

from .errors import ConcurrencyError
from .memory import ALIGN

MiB = 1 << 20


def size_class(nbytes: int) -> int:
    """Round up to a class 2**(k/4) MiB (about 19% apart; classes below 1 MiB are 64 KiB steps)."""
    if nbytes <= MiB:
        return max(ALIGN, -(-nbytes // (64 << 10)) * (64 << 10))
    k = math.ceil(4 * math.log2(nbytes / MiB) - 1e-9)
    size = int(math.ceil(MiB * 2 ** (k / 4)))
    return -(-size // ALIGN) * ALIGN


class Arena:
    """A growable arena buffer with a generation counter and a non-blocking use lock."""

    def __init__(self, *, size_classes: bool, shared: bool) -> None:
        self.size_classes = size_classes
        self.shared = shared
        self.buffer: np.ndarray | None = None
        self.generation = 0
        self.grows = 0
        self._lock = threading.Lock()
        self._guard = threading.Lock()

    @property
    def capacity(self) -> int:
        return 0 if self.buffer is None else int(self.buffer.nbytes)

    def reserve(self, nbytes: int) -> None:
        """Make the arena hold at least ``nbytes``; growing releases the old buffer first."""
        from .executor import aligned_empty

        need = size_class(nbytes) if self.size_classes else -(-nbytes // ALIGN) * ALIGN
        with self._guard:
            if self.capacity >= nbytes:
                return
            self.buffer = None  # release before allocating the larger one
            self.buffer = aligned_empty(need)
            self.generation += 1
            self.grows += 1

    @contextlib.contextmanager
    def use(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            raise ConcurrencyError(
                "the shared arena (static_memory_policy 2/4) is in use by another inference; "
                "run graphs of one Core one at a time, or use static_memory_policy 0 or 3"
            )
        try:
            yield
        finally:
            self._lock.release()
