"""The allocator's own count of the bytes it has handed out, read from inside the child.

Standard library only (ctypes), importing nothing from this package: a target child loads it
by file path. RSS is the allocator's decision (it keeps freed pages, purges on timers, trims);
its live-bytes counter moves only when the program keeps or frees memory, so a series of it is
flat unless something is kept. One reader per allocator, looked up in the library that is
already loaded (``stress_tests.verify`` has proven it is the process's malloc):

- glibc: ``mallinfo2()`` (2.33+): ``uordblks`` (in-use chunks of every arena) + ``hblkhd``
  (mmapped chunks). Chunks parked in the per-thread tcache count as in use (at most a few
  hundred KiB, steady). Older glibc: ``mallinfo()``, whose ``int`` fields wrap past 2 GiB
  (4 GiB unsigned): unwrapped against the previous sample, which is said in ``notes``.
- jemalloc: ``mallctl("epoch")`` (merges every arena's statistics) then ``stats.allocated`` less
  the free blocks parked in thread caches (``stats.arenas.<all>.tcache_bytes``, which
  ``stats.allocated`` counts as allocated); ``stats.active`` and ``stats.resident`` beside it.
  MIBs are resolved once (``mallctlnametomib``) and read with ``mallctlbymib``.
- tcmalloc: ``MallocExtension_GetNumericProperty("generic.current_allocated_bytes")``.
- mimalloc (Debian 2.0.9 is built without per-block statistics: ``mi_stats_print_out`` has no
  ``malloc`` line and ``mi_process_info`` only knows committed memory, which is not live bytes):
  ``mi_heap_visit_blocks`` over the main thread's backing heap, summing blocks in use times their
  block size per page. Exact for that heap; allocations of other threads live in their own heaps
  and are not counted (``scope`` says so).

Sizes are at each allocator's granularity (a 1000-byte request counts as its size class).
``PyBlocks`` is ``sys.getallocatedblocks()``: pymalloc serves objects up to 512 bytes from arenas
it maps itself, outside malloc, so a leak of small objects is seen there and not in ``HeapLive``.
Under ``PYTHONMALLOC=malloc`` every Python allocation goes to the allocator (and ``PyBlocks`` is 0).
"""

from __future__ import annotations

import ctypes
import os
import sys
from array import array
from collections.abc import Callable
from typing import Any

#: Series a counter may fill, in this order. ``HeapLive``: live bytes; ``PyBlocks``: pymalloc blocks.
FIELDS = ("HeapLive", "PyBlocks", "HeapActive", "HeapResident")
MISSING = -1  # as in stress_tests.probes (not imported: this module stands alone)
_WRAP = 1 << 32


class HeapCounterError(RuntimeError):
    """The allocator's counter cannot be read here (a missing symbol, a stats-less build)."""


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


class _Mallinfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


class _MiArea(ctypes.Structure):  # mi_heap_area_t of mimalloc 2.0
    _fields_ = [("blocks", ctypes.c_void_p), ("reserved", ctypes.c_size_t), ("committed", ctypes.c_size_t),
                ("used", ctypes.c_size_t), ("block_size", ctypes.c_size_t), ("full_block_size", ctypes.c_size_t)]


_MI_VISIT = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.POINTER(_MiArea), ctypes.c_void_p,
                             ctypes.c_size_t, ctypes.c_void_p)


class Unwrap:
    """A 32-bit counter read as unsigned, unwrapped against the previous value (moves under 2 GiB)."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.wrapped = 0  # times the raw counter crossed 4 GiB, either way

    def __call__(self, raw: int) -> int:
        raw %= _WRAP
        if self.value is None:
            self.value = raw
            return raw
        base = self.value - self.value % _WRAP
        candidates = (base - _WRAP + raw, base + raw, base + _WRAP + raw)
        best = min(candidates, key=lambda c: abs(c - self.value))  # type: ignore[operator]
        if best // _WRAP != self.value // _WRAP:
            self.wrapped += 1
        self.value = max(best, 0)
        return self.value


class HeapCounter:
    """Reads one allocator's live bytes (and ``PyBlocks``) into a series buffer.

    ``fields``: the series it fills, a prefix-free subset of ``FIELDS``; ``source``: which call;
    ``scope``: what the figure covers; ``notes``: anything a reader of the figure must know.
    """

    def __init__(self, allocator: str, source: str, scope: str, live: Callable[[], int],
                 extra: Callable[[], tuple[int, ...]] | None = None, extra_fields: tuple[str, ...] = (),
                 notes: list[str] | None = None, prime: Callable[[], None] | None = None) -> None:
        self.allocator, self.source, self.scope = allocator, source, scope
        self._live, self._extra, self._prime = live, extra, prime
        self.fields: tuple[str, ...] = ("HeapLive", "PyBlocks") + extra_fields
        self.notes = list(notes or ())
        self._blocks = sys.getallocatedblocks

    def live(self) -> int:
        """Live heap bytes now."""
        return self._live()

    def prime(self) -> None:
        """Before a measured loop: fill the allocator's per-thread caches that its counter counts as live
        (glibc's tcache), so that their filling up over the iterations does not read as growth."""
        if self._prime is not None:
            self._prime()

    def sample(self) -> dict[str, int]:
        out = array("q", [MISSING]) * len(self.fields)
        self.sample_into(out, 0)
        return dict(zip(self.fields, out))

    def sample_into(self, out: array, base: int) -> None:
        """Write ``fields`` at ``out[base:]``; no dict, no list: it runs every iteration."""
        out[base] = self._live()
        out[base + 1] = self._blocks()
        if self._extra is not None:
            for i, v in enumerate(self._extra(), 2):
                out[base + i] = v

    def info(self) -> dict[str, object]:
        """What the figure is, for the result's ``probe`` record."""
        return {"allocator": self.allocator, "source": self.source, "scope": self.scope,
                "fields": list(self.fields), "notes": list(self.notes)}


def _loaded(path: str | None) -> ctypes.CDLL:
    """A handle on an already loaded library (RTLD_NOLOAD: never load a second copy)."""
    if not path:
        raise HeapCounterError("no library path to look the counter up in")
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError as e:
        raise HeapCounterError(f"{path} is not loaded in this process: {e}") from e


#: glibc's tcache: 64 bins of chunks 32..1040 bytes, ``tcache_count`` (7 by default) chunks each.
_TCACHE_BINS, _TCACHE_COUNT = 64, 7


def _tcache_filler(lib: ctypes.CDLL) -> Callable[[], None]:
    """A call that leaves every tcache bin of this thread full.

    mallinfo2 counts the chunks parked in the thread's tcache as in use. They fill as the iterations
    meet request sizes they had not freed before, up to 7 x 34 KiB: recreate_request/u2netp under
    glibc read +307 B/iteration of "live" heap over 80 iterations, a false leak, and exactly 0 with
    ``tcache_count=0``. Once every bin is full, a steady loop keeps it full (what an iteration takes
    it gives back), so the figure no longer creeps. malloc then free ``count`` chunks of each size:
    the frees land in the tcache until its bins are full.
    """
    malloc, free = lib.malloc, lib.free
    malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    count = _TCACHE_COUNT
    for item in os.environ.get("GLIBC_TUNABLES", "").split(":"):
        key, _, value = item.partition("=")
        if key == "glibc.malloc.tcache_count" and value.isdigit():
            count = int(value)
    sizes = [16 * i + 8 for i in range(1, _TCACHE_BINS + 1)]  # requests whose chunks are 32, 48, ... 1040 bytes

    def fill() -> None:
        held = [malloc(n) for n in sizes for _ in range(count)]
        for p in held:
            free(p)

    return fill


def _symbols(path: str | None, *names: str, hint: str = "") -> list[Any]:
    """``names`` looked up in the loaded library at ``path``; a missing one is a HeapCounterError."""
    lib = _loaded(path)
    try:
        return [getattr(lib, n) for n in names]
    except AttributeError as e:
        raise HeapCounterError(f"{path} exports no {'/'.join(names)}{hint}") from e


def glibc_counter(libc: ctypes.CDLL | None = None) -> HeapCounter:
    lib = libc if libc is not None else ctypes.CDLL("libc.so.6")
    scope = ("in-use chunks of every arena (uordblks) + mmapped chunks (hblkhd); the thread's tcache (which "
             "counts as in use) is filled before the loop")
    fn = getattr(lib, "mallinfo2", None)
    if fn is not None:
        fn.restype, fn.argtypes = _Mallinfo2, []

        def live2() -> int:
            m = fn()
            return m.uordblks + m.hblkhd  # c_size_t fields read back as int already

        return HeapCounter("glibc", "mallinfo2", scope, live2, prime=_tcache_filler(lib))
    old = getattr(lib, "mallinfo", None)
    if old is None:
        raise HeapCounterError("this C library has neither mallinfo2 nor mallinfo")
    old.restype, old.argtypes = _Mallinfo, []
    used, mapped = Unwrap(), Unwrap()
    counter: HeapCounter

    def live1() -> int:
        m = old()
        value = used(m.uordblks) + mapped(m.hblkhd)
        if (used.wrapped or mapped.wrapped) and not any("wrapped" in n for n in counter.notes):
            counter.notes.append("mallinfo's 32-bit counters wrapped past 4 GiB during the run; unwrapped "
                                 "against the previous sample (exact while it moves under 2 GiB per sample)")
        return value

    counter = HeapCounter("glibc", "mallinfo", scope, live1, notes=[
        "glibc before 2.33: mallinfo() counts in 32-bit ints, unwrapped against the previous sample"])
    return counter


def jemalloc_counter(path: str | None) -> HeapCounter:
    nametomib, bymib = _symbols(path, "mallctlnametomib", "mallctlbymib", hint=" (a prefixed build?)")
    size_t_p = ctypes.POINTER(ctypes.c_size_t)
    nametomib.argtypes = [ctypes.c_char_p, size_t_p, size_t_p]
    bymib.argtypes = [size_t_p, ctypes.c_size_t, ctypes.c_void_p, size_t_p, ctypes.c_void_p, ctypes.c_size_t]

    def mib(name: str) -> tuple[ctypes.Array, int]:
        buf = (ctypes.c_size_t * 8)()
        n = ctypes.c_size_t(8)
        rc = nametomib(name.encode(), buf, ctypes.byref(n))
        if rc:
            raise HeapCounterError(f"jemalloc has no {name} (error {rc}; built without --enable-stats?)")
        return buf, n.value

    epoch_mib, epoch_len = mib("epoch")
    stats = [mib(n) for n in ("stats.allocated", "stats.active", "stats.resident")]
    one, out = ctypes.c_uint64(1), ctypes.c_size_t(0)
    out_len = ctypes.c_size_t(ctypes.sizeof(out))
    one_p, out_p, out_len_p = ctypes.byref(one), ctypes.byref(out), ctypes.byref(out_len)
    one_size = ctypes.sizeof(one)

    def read(m: tuple[ctypes.Array, int]) -> int:
        out_len.value = ctypes.sizeof(out)
        if bymib(m[0], m[1], out_p, out_len_p, None, 0):
            return MISSING
        return out.value

    def refresh() -> None:
        bymib(epoch_mib, epoch_len, None, None, one_p, one_size)

    if read(stats[0]) == MISSING:
        raise HeapCounterError("jemalloc refuses stats.allocated (built without statistics)")
    allocated, active, resident = stats
    notes = []
    # stats.allocated counts the blocks parked in thread caches as allocated: hundreds of KiB that
    # come and go with the caches' garbage collection (measured: 4 MiB kept read as 3.7 MiB, 0 freed
    # as -0.5 MiB). tcache_bytes of all arenas (MALLCTL_ARENAS_ALL = 4096) is what they hold.
    try:
        cached: tuple[ctypes.Array, int] | None = mib("stats.arenas.4096.tcache_bytes")
    except HeapCounterError:
        cached = None
        notes.append("this jemalloc has no stats.arenas.<all>.tcache_bytes: HeapLive includes the blocks "
                     "held in thread caches (hundreds of KiB that come and go)")

    def live() -> int:
        refresh()
        value = read(allocated)
        return value - max(read(cached), 0) if cached is not None else value

    def extra() -> tuple[int, int]:  # same epoch as the live figure just read
        return read(active), read(resident)

    return HeapCounter("jemalloc", "mallctl epoch + stats.allocated - stats.arenas.<all>.tcache_bytes",
                       "bytes allocated by the application, every arena (thread-cached free blocks excluded)",
                       live, extra, ("HeapActive", "HeapResident"), notes)


def tcmalloc_counter(path: str | None) -> HeapCounter:
    lib = _loaded(path)
    try:
        fn = lib.MallocExtension_GetNumericProperty
    except AttributeError as e:
        raise HeapCounterError(f"{path} exports no MallocExtension_GetNumericProperty") from e
    fn.argtypes, fn.restype = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)], ctypes.c_int
    name, out = b"generic.current_allocated_bytes", ctypes.c_size_t(0)
    out_p = ctypes.byref(out)
    if not fn(name, out_p):
        raise HeapCounterError("tcmalloc does not know generic.current_allocated_bytes")

    def live() -> int:
        fn(name, out_p)
        return out.value

    return HeapCounter("tcmalloc", "MallocExtension_GetNumericProperty(generic.current_allocated_bytes)",
                       "bytes in use by the application (thread-cache free lists excluded)", live)


def mimalloc_counter(path: str | None) -> HeapCounter:
    visit, backing = _symbols(path, "mi_heap_visit_blocks", "mi_heap_get_backing")
    backing.restype, backing.argtypes = ctypes.c_void_p, []
    visit.argtypes, visit.restype = [ctypes.c_void_p, ctypes.c_bool, _MI_VISIT, ctypes.c_void_p], ctypes.c_bool
    heap = backing()  # the calling (main) thread's heap, for the life of the thread
    total = [0]

    def area(_heap: int, a: Any, _block: int, _size: int, _arg: int) -> bool:
        info = a.contents
        total[0] += info.used * info.full_block_size
        return True

    callback = _MI_VISIT(area)  # kept alive with the counter: mimalloc calls it

    def live() -> int:
        total[0] = 0
        visit(heap, False, callback, None)  # False: per page (area), never per block
        return total[0]

    counter = HeapCounter("mimalloc", "mi_heap_visit_blocks(backing heap): blocks in use x block size",
                          "the main thread's heap only; other threads' heaps are not counted", live, notes=[
                              "mimalloc 2.0 (Debian) keeps no live-bytes statistic; the main thread's heap is "
                              "walked page by page (cost grows with its pages)"])
    counter._callback = callback  # type: ignore[attr-defined]
    return counter


_READERS: dict[str, Callable[[str | None], HeapCounter]] = {
    "glibc": lambda _path: glibc_counter(), "jemalloc": jemalloc_counter, "tcmalloc": tcmalloc_counter,
    "mimalloc": mimalloc_counter,
}


def open_counter(allocator: str, path: str | None = None) -> HeapCounter:
    """The live-bytes reader of ``allocator`` (loaded from ``path``); raises HeapCounterError where none works."""
    reader = _READERS.get(allocator)
    if reader is None:
        raise HeapCounterError(f"no heap counter for allocator {allocator!r}; known: {sorted(_READERS)}")
    try:
        return reader(path)
    except (OSError, AttributeError, ValueError) as e:
        raise HeapCounterError(f"{allocator}: {type(e).__name__}: {e}") from e


def pymalloc_active() -> bool:
    """Whether Python's small-object allocator is in use (``PYTHONMALLOC=malloc`` turns it off)."""
    return sys.getallocatedblocks() > 0
