"""Memory probes: what the kernel says this process uses, read cheaply and often.

On Linux the probe keeps file descriptors on /proc/self/status and /proc/self/statm open and
re-reads them with ``os.pread`` (procfs regenerates the text at offset 0), so a sample costs
no open/close and allocates only short-lived strings. The peak (VmHWM) is reset by writing
``5`` to /proc/self/clear_refs; where that is refused the probe says so (``peak_reset ==
"hwm"``) and peaks become the process high-water mark. Elsewhere psutil stands in and the
fields it cannot see are ``None``, never 0.
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Sequence
from typing import Protocol

from .spec import SERIES_FIELDS

#: Fields of /proc/self/status given in kB (converted to bytes here); Threads is a count.
_KB_FIELDS = frozenset(f for f in SERIES_FIELDS if f != "Threads")
MISSING = -1  # marker in preallocated series buffers; read back as None


def parse_status(text: str) -> dict[str, int | None]:
    """The SERIES_FIELDS of a /proc/<pid>/status text, in bytes (Threads as a count); absent -> None."""
    out: dict[str, int | None] = dict.fromkeys(SERIES_FIELDS)
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep or key not in out:
            continue
        parts = rest.split()
        if not parts:
            continue
        value = int(parts[0])
        out[key] = value * 1024 if key in _KB_FIELDS else value
    return out


class Probe(Protocol):
    """What the worker needs from a probe, on Linux or elsewhere."""

    source: str
    peak_reset: str  # "clear_refs" (exact per-stage peaks) or "hwm" (monotone high-water mark)
    fields: tuple[str, ...]

    def sample(self) -> dict[str, int | None]: ...
    def sample_into(self, out: array, base: int) -> None: ...
    def rss(self) -> int | None: ...
    def reset_peak(self) -> bool: ...
    def close(self) -> None: ...


class ProcProbe:
    """/proc/self readers over kept descriptors."""

    source = "proc"
    fields: tuple[str, ...] = SERIES_FIELDS

    def __init__(self, proc: str = "/proc/self") -> None:
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        self._status = os.open(f"{proc}/status", flags)
        self._statm = os.open(f"{proc}/statm", flags)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._index = {name: i for i, name in enumerate(self.fields)}
        self._clear: int | None = None
        self.peak_reset = "hwm"
        self.peak_reset_error = ""
        try:
            self._clear = os.open(f"{proc}/clear_refs", os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
            os.write(self._clear, b"5")
            self.peak_reset = "clear_refs"
        except OSError as e:  # read-only /proc, seccomp, kernels before 4.0 (EINVAL)
            self.peak_reset_error = f"{type(e).__name__}: {e}"
            if self._clear is not None:
                os.close(self._clear)
                self._clear = None

    def status_text(self) -> str:
        return os.pread(self._status, 8192, 0).decode("ascii", "replace")

    def sample(self) -> dict[str, int | None]:
        return parse_status(self.status_text())

    def sample_into(self, out: array, base: int) -> None:
        """Write the fields in ``fields`` order at ``out[base:]`` without building a dict."""
        index = self._index
        for line in os.pread(self._status, 8192, 0).split(b"\n"):
            key, _, rest = line.partition(b":")
            i = index.get(key.decode("ascii"))
            if i is not None:
                v = int(rest.split()[0])
                out[base + i] = v if key == b"Threads" else v * 1024

    def statm(self) -> tuple[int, int, int]:
        """(VmSize, VmRSS, file-backed + shmem resident) in bytes: the cheapest sample there is."""
        size, resident, shared = os.pread(self._statm, 128, 0).split()[:3]
        page = self._page
        return int(size) * page, int(resident) * page, int(shared) * page

    def rss(self) -> int:
        return self.statm()[1]

    def reset_peak(self) -> bool:
        if self._clear is None:
            return False
        os.write(self._clear, b"5")
        return True

    def close(self) -> None:
        for fd in (self._status, self._statm, self._clear):
            if fd is not None:
                os.close(fd)
        self._clear = None


class PsutilProbe:
    """Fallback outside Linux: rss and vms from psutil, the peak from the platform's high-water mark."""

    source = "psutil"
    peak_reset = "hwm"
    peak_reset_error = "no /proc/self/clear_refs on this platform"
    fields: tuple[str, ...] = SERIES_FIELDS

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()

    def _peak(self, info: object) -> int | None:
        peak = getattr(info, "peak_wset", None)  # Windows
        if peak is not None:
            return int(peak)
        try:
            import resource
        except ImportError:
            return None
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024  # bytes on macOS, kB elsewhere

    def sample(self) -> dict[str, int | None]:
        info = self._proc.memory_info()
        out: dict[str, int | None] = dict.fromkeys(self.fields)
        out["VmRSS"] = int(info.rss)
        out["VmSize"] = int(info.vms)
        out["VmHWM"] = self._peak(info)
        try:
            out["Threads"] = self._proc.num_threads()
        except Exception:  # noqa: BLE001  (some platforms refuse it; missing, not zero)
            pass
        return out

    def sample_into(self, out: array, base: int) -> None:
        values = self.sample()
        for i, name in enumerate(self.fields):
            v = values[name]
            out[base + i] = MISSING if v is None else v

    def rss(self) -> int | None:
        return int(self._proc.memory_info().rss)

    def reset_peak(self) -> bool:
        return False

    def close(self) -> None:
        pass


def make_probe(prefer: str = "auto") -> Probe:
    """A ProcProbe where /proc/self/status can be read (or ``prefer="psutil"``), else a PsutilProbe."""
    if prefer != "psutil":
        try:
            return ProcProbe()
        except OSError:
            if prefer == "proc":
                raise
    return PsutilProbe()


class SeriesBuffer:
    """Per-iteration samples in one preallocated block, so recording adds nothing to what is measured."""

    def __init__(self, fields: Sequence[str], rows: int) -> None:
        self.fields = tuple(fields)
        self.rows = rows
        self.data = array("q", [MISSING]) * (rows * len(self.fields))
        self.latency = array("d", [0.0]) * rows
        self.filled = 0

    def row(self, i: int) -> dict[str, int | None]:
        n = len(self.fields)
        return {f: (None if v == MISSING else v) for f, v in zip(self.fields, self.data[i * n:(i + 1) * n])}

    def series(self) -> dict[str, list[int | None]]:
        n = len(self.fields)
        return {
            f: [None if v == MISSING else v for v in self.data[j:self.filled * n:n]]
            for j, f in enumerate(self.fields)
        }


def tracemalloc_start(frames: int) -> None:
    import tracemalloc

    if frames > 0 and not tracemalloc.is_tracing():
        tracemalloc.start(frames)


def tracemalloc_current() -> int | None:
    import tracemalloc

    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None


def tracemalloc_overhead() -> int:
    """Bytes tracemalloc itself holds (its traces and tracebacks, on the malloc heap); 0 when off."""
    import tracemalloc

    return tracemalloc.get_tracemalloc_memory() if tracemalloc.is_tracing() else 0
