"""``memgate hunt --native``: allocation sites that grow, native frames included, from memray (an optional extra).

memray's ``Tracker(native_traces=True)`` records every allocation that goes through a library's
PLT (C extensions, shared libraries, numpy, the interpreter) with its Python and native frames.
Two windows of the steady part are tracked, the second twice as long as the first; in each, the
allocations still alive at its end are summed per call stack. A site that keeps memory every
iteration holds twice as much at the end of the long window; what only lived across a window's
end (the last iteration's outputs) holds the same in both, and a one-off allocation shows in one
window only. So the rate is ``(long - short) / (its extra iterations)``, kept when both windows grew.

Blind spot: a ``malloc`` reached through a function pointer (``ctypes.CDLL(None).malloc``,
anything ``dlsym``'d) bypasses the PLT, so memray cannot see it; the heap counter does, and the
hunt report says how much of its growth memray did not attribute.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Iterable
from typing import Any

#: Frames that say where memory was asked for, not who asked: the interpreter's own C code.
_INTERNAL_FILES = ("Objects/", "Python/", "Modules/", "Include/", "Parser/")
#: The hunt's own bookkeeping (tracemalloc's traces, memray's tracker): never a site of the program.
_OWN_FILES = ("_tracemalloc.c", "/memray/")
_ALLOCATOR_FUNCTIONS = frozenset({"malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc",
                                  "memalign", "valloc", "pvalloc", "mmap", "mmap64"})
TOP = 15
INSTALL_HINT = ("memray is not installed for this interpreter: `memgate hunt --native` needs it "
                "(pip install 'memgate[native]' or pip install memray; Linux and macOS only)")


class NativeHuntError(RuntimeError):
    """memray is missing or cannot track here."""


def available(python: str | None = None) -> bool:
    """Whether ``python`` (this interpreter by default) can import memray."""
    if python is None:
        import importlib.util

        return importlib.util.find_spec("memray") is not None
    import subprocess

    try:
        return subprocess.run([python, "-c", "import memray"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def windows(total: int, warmup: int | None) -> tuple[int, int, int]:
    """(start, middle, end) iterations: a short window [start, middle) and one twice as long [middle, end)."""
    start = warmup if warmup else max(1, total // 4)
    length = (total - start) // 3
    if length < 1:
        raise NativeHuntError(f"--native needs at least {start + 3} iterations (warm-up {start}, then two windows)")
    return start, start + length, start + 3 * length


class NativeHunter:
    """Starts and stops memray's tracker at the window boundaries; reads the captures at the end."""

    def __init__(self, total: int, warmup: int | None, workdir: str, frames: int = 32) -> None:
        try:
            import memray
        except ImportError as e:
            raise NativeHuntError(INSTALL_HINT) from e
        self._memray = memray
        self.start, self.middle, self.end = windows(total, warmup)
        self.frames = frames
        self.paths = [os.path.join(workdir, "native-1.bin"), os.path.join(workdir, "native-2.bin")]
        self._tracker: Any = None

    @property
    def points(self) -> tuple[int, int, int]:
        return self.start, self.middle, self.end

    def before_iteration(self, i: int) -> None:
        """Window boundaries fall before iteration ``i`` (after the previous one's sample)."""
        if i in (self.middle, self.end) and self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker = None
        if i in (self.start, self.middle):
            path = self.paths[0 if i == self.start else 1]
            if os.path.exists(path):
                os.remove(path)
            self._tracker = self._memray.Tracker(path, native_traces=True)
            self._tracker.__enter__()

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker = None

    def sites(self, top: int = TOP) -> list[dict[str, Any]]:
        """Sites that grew in both windows, by bytes per iteration (the hunt table's rows)."""
        self.close()
        if not all(os.path.exists(p) for p in self.paths):
            return []
        short, long_ = (self._leaked(p) for p in self.paths)
        extra = (self.end - self.middle) - (self.middle - self.start)
        out = []
        for key, (size2, count2, stack) in long_.items():
            if any(own in f[1] for f in stack for own in _OWN_FILES):
                continue
            size1, count1, _ = short.get(key, (0, 0, stack))
            rate = (size2 - size1) / extra
            if size1 <= 0 or rate <= 0:
                continue
            out.append(site_row(stack, rate, (count2 - count1) / extra, size2))
        out.sort(key=lambda s: -s["bytes_per_iteration"])
        return out[:top]

    def _leaked(self, path: str) -> dict[tuple[Any, ...], tuple[int, int, list[tuple[str, str, int]]]]:
        """Call stack -> (bytes, blocks, frames) of what was allocated in the window and still alive at its end."""
        reader = self._memray.FileReader(path)
        out: dict[tuple[Any, ...], tuple[int, int, list[tuple[str, str, int]]]] = {}
        for rec in reader.get_leaked_allocation_records(merge_threads=True):
            # Leaked records are live allocations, for which memray always has a hybrid trace (only
            # deallocation records lack one); the tracker records native frames.
            stack = [tuple(f) for f in rec.hybrid_stack_trace(max_stacks=self.frames)]
            key = tuple(stack)
            size, count, _ = out.get(key, (0, 0, stack))
            out[key] = (size + rec.size, count + rec.n_allocations, stack)  # type: ignore[assignment]
        reader.close()
        return out


def site_row(stack: Iterable[tuple[str, str, int]], rate: float, blocks: float, total: int) -> dict[str, Any]:
    """One hunt row: the first native frame that is not the allocator or the interpreter, and the Python caller."""
    frames = list(stack)
    native = next((f for f in frames if not f[1].endswith(".py") and f[0] not in _ALLOCATOR_FUNCTIONS
                   and not f[1].removeprefix("./").startswith(_INTERNAL_FILES)), None)
    python = next((f for f in frames if f[1].endswith(".py")), None)
    parts = [f"{native[1]}:{native[2]} {native[0]}()" if native else "", f"{python[1]}:{python[2]}" if python else ""]
    line = linecache.getline(python[1], python[2]).strip() if python else ""
    return {"site": " <- ".join(p for p in parts if p) or "(no frame)", "line": line,
            "bytes_per_iteration": rate, "count_per_iteration": blocks, "total_bytes": total,
            "traceback": [f"{f[1]}:{f[2]} {f[0]}" for f in frames], "source": "memray"}
