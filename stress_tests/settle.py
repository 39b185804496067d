"""Settling the allocator: give back every freed page now, so a stage's figures do not depend on timers.

A leaf module of the child (standard library only, no package imports), loaded before anything it measures.

jemalloc returns freed ("dirty") pages to the kernel on a timer (``dirty_decay_ms``, 10 s, then
``muzzy_decay_ms``), mimalloc after its purge delay; how many of a stage's freed pages are still
resident when the stage's "after" sample is taken then depends on how fast the machine ran the
stage. Measured (``u2netp`` 64x64, reduce mode, first inference under jemalloc, RssAnon change):
+10.9 MiB with the default decay here, +17.0 MiB on a faster Xeon, +19.3 MiB with decay off,
+1.0 MiB with decay 0. The BLAS kernel moved the same figure by 0.5 MiB at most (SkylakeX,
Haswell, Zen, Sandybridge). So the worker settles the allocator before a stage and before its
"after" sample: the gated figure is what the program still holds plus what the allocator cannot
give back (fragmentation), the same on a slow machine and a fast one. The sample before settling
is kept as reported information (``StageMemory.rss_unsettled`` / ``anon_unsettled``).

Per allocator, the call that returns everything it can:

- glibc: ``malloc_trim(0)`` (every arena, top and holes);
- jemalloc: ``mallctl("thread.tcache.flush")`` then ``mallctl("arena.<MALLCTL_ARENAS_ALL>.purge")``
  (dirty and muzzy pages of every arena);
- tcmalloc (gperftools): ``MallocExtension_ReleaseFreeMemory()`` (the page heap's free spans);
- mimalloc: ``mi_collect(true)``, a wait past its decommit delay, ``mi_collect(true)`` again. The
  delay (``mi_option_decommit_delay``, 25 ms in 2.0.9) is stamped on each span when it is freed, so a
  collection right after the frees returns only part of them (measured: 27 of 47 MiB still resident
  after it, 0 after the wait), and setting the option to 0 at that point changes nothing.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from dataclasses import dataclass

#: jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena.
_JEMALLOC_ALL_ARENAS = 4096


@dataclass(frozen=True)
class Settler:
    """A no-argument call that makes the allocator return its free pages, and what it is."""

    allocator: str
    how: str
    call: Callable[[], None]

    def __call__(self) -> None:
        self.call()


class SettleError(RuntimeError):
    """The allocator's release call is not where it should be (a mismatched library)."""


def _lookup(name: str) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    """A symbol from the process's global namespace (a preloaded allocator is there first)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except AttributeError as e:
        raise SettleError(f"{name} is not exported by any library of this process") from e


def _glibc() -> Settler:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError) as e:
        raise SettleError(f"glibc's malloc_trim is not available: {e}") from e
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    def call() -> None:
        trim(0)

    return Settler("glibc", "malloc_trim(0)", call)


def _jemalloc() -> Settler:
    mallctl = _lookup("mallctl")
    mallctl.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    mallctl.restype = ctypes.c_int
    purge = f"arena.{_JEMALLOC_ALL_ARENAS}.purge".encode()
    for name in (b"thread.tcache.flush", purge):  # probe once: a wrong name returns ENOENT, not a crash
        rc = mallctl(name, None, None, None, 0)
        if rc not in (0, 14):  # EFAULT (14): no tcache on this thread (tcache:false), harmless
            raise SettleError(f"mallctl({name.decode()}) returned {rc}")

    def call() -> None:
        mallctl(b"thread.tcache.flush", None, None, None, 0)
        mallctl(purge, None, None, None, 0)

    return Settler("jemalloc", f"mallctl thread.tcache.flush + arena.{_JEMALLOC_ALL_ARENAS}.purge", call)


def _tcmalloc() -> Settler:
    release = _lookup("MallocExtension_ReleaseFreeMemory")
    release.argtypes, release.restype = [], None
    return Settler("tcmalloc", "MallocExtension_ReleaseFreeMemory()", lambda: release())


#: mimalloc 2.0.x's ``mi_option_decommit_delay`` (index in ``mi_option_t``) and its documented default.
_MI_DECOMMIT_DELAY, _MI_DEFAULT_DELAY_MS = 15, 25


def _mimalloc() -> Settler:
    collect = _lookup("mi_collect")
    collect.argtypes, collect.restype = [ctypes.c_bool], None
    version, get = _lookup("mi_version"), _lookup("mi_option_get")
    version.restype, get.restype, get.argtypes = ctypes.c_int, ctypes.c_long, [ctypes.c_int]
    v = version()
    delay_ms = get(_MI_DECOMMIT_DELAY) if 200 <= v < 300 else _MI_DEFAULT_DELAY_MS  # the enum is 2.x's
    wait = (max(0, delay_ms) + 5) / 1000.0

    def call() -> None:
        collect(True)
        time.sleep(wait)
        collect(True)

    return Settler("mimalloc", f"mi_collect(true), {wait * 1e3:.0f} ms, mi_collect(true) (mimalloc {v})", call)


#: Allocators that give memory back on a timer: their stage figures are read settled. glibc trims
#: and tcmalloc (gperftools) releases by bytes freed, not by time, so theirs do not depend on the
#: machine's speed; settling them anyway is not free: ``malloc_trim(0)`` before the stages made
#: glibc re-fault the trimmed pages slowly over the next iterations, and threads/mobilenetv2 (4
#: threads, 40 iterations) then read ``leak`` in 2-3 of 10 runs against 0 of 10 unsettled.
TIMED = frozenset({"jemalloc", "mimalloc"})

_MAKERS: dict[str, Callable[[], Settler]] = {"glibc": _glibc, "jemalloc": _jemalloc, "tcmalloc": _tcmalloc,
                                             "mimalloc": _mimalloc}


def make_settler(allocator: str) -> Settler:
    """The settling call of ``allocator`` (one of glibc, jemalloc, tcmalloc, mimalloc) in this process.

    Call it only once the allocator is proven active (``verify``): the symbols are looked up in the
    process's global namespace, where a preloaded allocator comes first.
    """
    try:
        return _MAKERS[allocator]()
    except KeyError:
        raise SettleError(f"no settling call known for allocator {allocator!r}; known: {sorted(_MAKERS)}") from None
