"""The measured loop of a target or a test body: a callable run N times, sampled after each call.

Standard library only (it runs in the user's interpreter). The same discipline as the pipeline
worker: per iteration the call, garbage collection, optional ``malloc_trim(0)``, then the sample
into storage allocated before the loop; the peak is reset at each iteration start where
/proc/self/clear_refs allows it. The first call is also a stage (``iter1 call``), so its one-off
cost shows where a pipeline's first inference would.

A call that raises ends the loop: the cell is ``failed`` with the iteration, the exception and
the traceback (the user's frames, not ours), and the samples taken so far are kept.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..journal import Journal
from ..probes import Probe, make_probe, tracemalloc_start
from ..spec import Applied, CellResult, CellSpec
from ..worker import IterationRecorder, _asdict, _heap_counter, _malloc_trim, _settler, measure, verify

#: What the stages and the first call are named in results and reports.
FIRST_CALL = "iter1 call"
_HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TargetFailed(Exception):
    """The user's code failed (import, setup, a call, close): the cell's reason and the user's traceback."""

    def __init__(self, reason: str, error: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trace = user_traceback(error) if error is not None else ""


def user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the harness's own frames (they explain nothing to the user)."""
    tb = error.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_HARNESS + os.sep):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def foreign_modules(private: str) -> list[str]:
    """Modules loaded in this process that are neither the standard library nor ours: should be none."""
    std: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
    top = {name.split(".", 1)[0] for name in sys.modules}
    return sorted(t for t in top if t not in std and t != private and t not in ("__main__", "__mp_main__"))


def begin(spec: CellSpec, journal: Journal, extra: dict[str, Any]) -> tuple[Probe, Applied, dict[str, Any],
                                                                           tuple[str, ...], Any]:
    """Prove the allocator, open the probe and the allocator's heap counter (``heap``, ctypes only),
    write the journal's start: (probe, applied, probe info, fields, counter or None).

    ``extra`` goes into the probe info (the child's own baseline: its RSS before the user's code).
    ``settler(spec, info, applied)`` then gives the stages' allocator settling, as pipelines have it.
    """
    applied = verify(spec)
    probe = make_probe("proc")  # never psutil: the child imports the standard library only
    at_start = probe.sample()
    info: dict[str, Any] = {"source": probe.source, "peak_reset": probe.peak_reset,
                            "peak_reset_error": getattr(probe, "peak_reset_error", ""), "gc_per_iteration": True,
                            "child": {"python": sys.version.split()[0], "executable": sys.executable,
                                      "rss_at_start": at_start["VmRSS"], "anon_at_start": at_start["RssAnon"],
                                      **extra}}
    counter = _heap_counter(spec, applied, info)
    fields = (tuple(probe.fields) + (counter.fields if counter else ()) + ("IterPeak",)
              + (("py_traced",) if spec.tracemalloc else ()))
    journal.write("start", fields=list(fields), probe=info, applied=_asdict(applied), pid=os.getpid())
    return probe, applied, info, fields, counter


def settler(spec: CellSpec, info: dict[str, Any], applied: Applied) -> Any:
    """The allocator settling of stage samples (jemalloc's and mimalloc's purge timers), or None: see ``settle``."""
    return _settler(spec, info, applied)


def stage(probe: Probe, name: str, fn: Callable[[], Any], journal: Journal, what: str,
          settle: Any = None, counter: Any = None) -> tuple[Any, Any]:
    """Run ``fn`` as a measured stage: (its StageMemory, its return value); raises TargetFailed on an error."""
    box: list[Any] = []

    def step(_: Any) -> None:
        box.append(fn())

    try:
        memory = measure(probe, name, step, None, journal, settle, counter)
    except (Exception, SystemExit) as e:  # noqa: BLE001  (the user's code: any error is the cell's reason)
        raise TargetFailed(f"{what} raised {type(e).__name__}: {e}", e) from None
    return memory, box[0]


def iterate(spec: CellSpec, probe: Probe, fields: tuple[str, ...], journal: Journal, result: CellResult,
            call: Callable[[], Any], settle: Any = None, counter: Any = None) -> None:
    """Call ``call`` ``spec.total_iterations`` times, sampled after each; fills ``result`` (series, latency, hunt)."""
    trim = _malloc_trim() if spec.trim else None
    if spec.trim and trim is None:
        result.notes.append("--trim asked but malloc_trim is unavailable here")
    tracemalloc_start(spec.tracemalloc)
    hunter = None
    if spec.tracemalloc:
        from ..hunt import Hunter

        hunter = Hunter(spec, spec.total_iterations)
    total = spec.total_iterations
    rec = IterationRecorder(spec, probe, counter, fields, journal, result)
    buf = rec.buf
    try:
        for i in range(total):
            probe.reset_peak()
            t0 = time.perf_counter()
            first_peak = None
            if i == 0:
                memory, _ = stage(probe, FIRST_CALL, call, journal, "the first call", settle, counter)
                result.stages.append(memory)
                first_peak = memory.peak
            else:
                try:
                    call()
                except (Exception, SystemExit) as e:  # noqa: BLE001
                    raise TargetFailed(f"raised on iteration {i + 1}: {type(e).__name__}: {e}", e) from None
            latency = time.perf_counter() - t0
            gc.collect()
            if trim is not None:
                trim(0)
            rec.record(i, latency, first_peak)
            if hunter is not None:
                rec.hold(functools.partial(hunter.after_iteration, i))
    finally:
        result.series = buf.series()
        result.latency = list(buf.latency[:buf.filled])
    if hunter is not None:
        result.hunt = hunter.sites()


def failed(result: CellResult, error: TargetFailed) -> CellResult:
    """Mark ``result`` failed with the user's reason and traceback (samples so far are kept)."""
    result.status, result.reason = "failed", error.reason
    result.stderr_tail = error.trace
    return result
