"""What a cell's result becomes in a baseline: named metrics, their within-run spread, and the tolerance rule.

Metrics of one cell (all lower-is-better; sizes in bytes, times in seconds):

- ``rss_delta:<stage>``: VmRSS after the stage minus before it (the cell's ``stages``);
- ``hwm_delta:<stage>``: the stage's peak (VmHWM, reset at the stage start) minus RSS before it;
- ``anon_delta:<stage>``: RssAnon after the stage minus before it: the memory the process itself
  allocated, without the file-backed pages (mmap'd weights, libraries) the kernel maps on access;
- ``steady_rss``: median VmRSS over the steady part (after the warm-up the leak analysis found),
  minus VmRSS at the cell's start (after the child's imports, before its first stage);
- ``steady_anon``: the same for RssAnon. Under jemalloc and mimalloc, whose purge timers decide
  how many freed pages a loop holds, both levels are the reading after the loop with the allocator
  settled (``worker.settled_end``) instead of the loop's median;
- ``peak_hwm``: the loop's VmHWM at the last iteration (its running peak), minus VmRSS at the start;
- ``growth``: the deciding series' (RssAnon, else VmRSS) Theil-Sen slope, bytes per iteration;
- ``latency``: median seconds per iteration over the steady part;
- ``heap_delta:<stage>``: the allocator's live bytes after the stage minus before it (``stress_tests.heap``:
  what the program keeps, whatever the allocator does with pages);
- ``steady_heap``: median live heap bytes over the heap series' own steady part;
- ``heap_growth``: the live heap's Theil-Sen slope, bytes per iteration.

The heap figures exist where the allocator's counter was read (every supported allocator, and
none in results written before it); a baseline without them reports them as ``new``.

**No level includes what the interpreter and its imports mapped.** How many pages of numpy's,
scipy's and onnx's shared libraries a fresh child has resident depends on the install, not on the
code: RssFile right after the imports measured 28.8 MiB in a tox env and 20.1 MiB in a plain venv
of the same checkout, RssAnon 24.56 MiB in both. So every level is a delta from the child's own
state after its imports, and every VmRSS/VmHWM figure carries its file-backed part (``Measure.file``:
the VmRSS change minus the RssAnon change), which ``compare`` takes out before judging and names in
the row (RssFile is reported, never gated).

The stage figures are read with the allocator settled (``stress_tests.settle``), so they do not
depend on how fast the machine ran the stage against the allocator's purge timers.

**Spread** is measured when a baseline is recorded: the range (max - min) of a metric over the
repeated runs of its cell (``memgate check --repeat 3`` records three, under as many BLAS kernels
as ``--blas-kernels`` names: the spread is then measured across kernels), or, if larger, the
within-run spread of a series metric: the interquartile range of steady VmRSS, of steady
latency, and the half-width of the growth slope's interval.

**Tolerance** = ``max(SPREAD_MULTIPLE * spread, relative floor * |baseline|, absolute floor) + slack``
with the floors in ``FLOORS`` below.  ``slack`` is the largest file-backed change (VmRSS change minus
RssAnon change) of a ``rss_delta``/``hwm_delta`` stage over the recorded runs, and for ``steady_rss``
and ``peak_hwm`` the file-backed pages mapped since the cell started (0 elsewhere): how many
pages of a mapped file are resident after a stage is the kernel's choice (fault-around maps
neighbouring pages only if they are in the page cache), so bert's first inference under glibc
measured +52.7 to +71.7 MiB VmRSS in identical runs while RssAnon stayed at +28.7-28.9 MiB.  The
``anon_delta`` and ``steady_anon`` figures keep the tight gate on what the runtime allocates. The
floors were set from reruns, installs and BLAS kernels on machines of the CI kind (2 cores, shared,
loaded): see ``baselines/README.md`` for the measured noise. A value above ``baseline + tolerance`` is a
regression, below ``baseline - tolerance`` an improvement (the baseline should be tightened).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .spec import CellResult, CellSpec, CoreOptions

#: Tolerance = max(SPREAD_MULTIPLE * spread, relative * |baseline|, absolute).
SPREAD_MULTIPLE = 3.0
MiB = 1 << 20


@dataclass(frozen=True)
class Floor:
    relative: float
    absolute: float
    unit: str


FLOORS: dict[str, Floor] = {
    "rss_delta": Floor(0.10, 4 * MiB, "bytes"),
    "hwm_delta": Floor(0.10, 4 * MiB, "bytes"),
    "anon_delta": Floor(0.10, 4 * MiB, "bytes"),
    "steady_rss": Floor(0.05, 4 * MiB, "bytes"),
    "steady_anon": Floor(0.05, 4 * MiB, "bytes"),
    "peak_hwm": Floor(0.05, 4 * MiB, "bytes"),
    "growth": Floor(0.0, 4096.0, "bytes/iteration"),
    # Latency swings up to 7x for sub-millisecond cells and 3.5x for 7 ms ones on a loaded 2-core
    # machine (measured): the gate catches gross slowdowns (5x and 20 ms) only.
    "latency": Floor(4.0, 0.020, "seconds"),
    # The live heap is a count, not pages: no file-backed slack, no purge timers, so tighter floors.
    "heap_delta": Floor(0.10, 1 * MiB, "bytes"),
    "steady_heap": Floor(0.05, 1 * MiB, "bytes"),
    "heap_growth": Floor(0.0, 1024.0, "bytes/iteration"),
}


def kind(metric: str) -> str:
    """``hwm_delta:compile`` -> ``hwm_delta``."""
    return metric.split(":", 1)[0]


def unit(metric: str) -> str:
    return FLOORS[kind(metric)].unit


def tolerance(metric: str, baseline: float, spread: float, slack: float = 0.0) -> float:
    """The documented rule: spread-derived, never below the metric's relative and absolute floors, plus slack."""
    f = FLOORS[kind(metric)]
    return max(SPREAD_MULTIPLE * spread, f.relative * abs(baseline), f.absolute) + slack


@dataclass(frozen=True)
class Measure:
    """One metric of one run: its value and the spread seen inside that run (0 when none)."""

    value: float
    spread: float = 0.0
    slack: float = 0.0  # file-backed pages in the figure, whose residency the kernel decides
    file: float | None = None  # the figure's file-backed part (VmRSS/VmHWM figures only): taken out by compare


def model_label(spec: CellSpec) -> str:
    """The model part of a baseline key: name, generator options and settings that change memory.

    ``inject_leak_bytes``, iterations, warm-up, seed and timeouts are left out on purpose: an
    injected leak is compared with the clean baseline, which is how the gate's self-test works.
    """
    if spec.target:  # a target cell: the target and its arguments (Python literals, so exact)
        return spec.target_label
    name = spec.model.rsplit("/", 1)[-1] if ("/" in spec.model or spec.model.endswith(".onnx")) else spec.model
    if spec.model_options:
        name += "[" + ",".join(f"{k}={v}" for k, v in spec.model_options) + "]"
    extra = []
    if spec.pipeline == "threads" and spec.threads != CellSpec.threads:
        extra.append(f"threads={spec.threads}")
    if spec.pipeline == "multi_graph" and spec.graphs != CellSpec.graphs:
        extra.append(f"graphs={spec.graphs}")
    if getattr(spec, "python_malloc", False):  # Python's objects on the allocator: other figures entirely
        extra.append("pymalloc=off")
    default = CoreOptions()
    for field in ("enable_mmap", "cache_dir", "compile_threads", "atomic_clean_policy", "static_memory_policy",
                  "trim_on_release"):
        value = getattr(spec.core, field)
        if value != getattr(default, field):
            extra.append(f"{field}={'set' if field == 'cache_dir' else value}")
    return name + ("{" + ",".join(extra) + "}" if extra else "")


def entry_key(spec: CellSpec) -> str:
    """``pipeline/model/mode/runtime``: a baseline entry's key within its environment's file."""
    return "/".join((spec.pipeline, model_label(spec), spec.mode, spec.runtime))


def measure(result: CellResult) -> dict[str, Measure]:
    """Every metric a finished cell offers (empty for a cell that did not finish)."""
    if result.status not in ("ok", "leak"):
        return {}
    out: dict[str, Measure] = {}
    for s in result.stages:
        anon = None if s.anon_after is None or s.anon_before is None else s.anon_after - s.anon_before
        file = None if anon is None or s.delta is None else float(s.delta - anon)
        slack = 0.0 if file is None else abs(file)
        if s.delta is not None:
            out[f"rss_delta:{s.stage}"] = Measure(float(s.delta), slack=slack, file=file)
        if s.peak_delta is not None:
            out[f"hwm_delta:{s.stage}"] = Measure(float(s.peak_delta), slack=slack, file=file)
        if anon is not None:
            out[f"anon_delta:{s.stage}"] = Measure(float(anon))
    first = result.stages[0] if result.stages else None
    rss0 = first.rss_before if first is not None else None
    anon0 = first.anon_before if first is not None else None
    start = _steady_start(result)
    rss = [v for v in result.series.get("VmRSS", [])[start:] if v is not None]
    steady_anon = [v for v in result.series.get("RssAnon", [])[start:] if v is not None]
    file_moved = _file_pages_mapped(result, start)
    mapped = max(0.0, file_moved or 0.0)
    settled = result.probe.get("settled_end") or {}
    if rss and rss0 is not None:
        if settled.get("VmRSS") is not None:  # a timer-driven allocator, settled after the loop
            out["steady_rss"] = Measure(float(settled["VmRSS"]) - rss0, 0.0, mapped, file_moved)
        else:
            out["steady_rss"] = Measure(float(statistics.median(rss)) - rss0, _iqr(rss), mapped, file_moved)
    if steady_anon and anon0 is not None:
        if settled.get("RssAnon") is not None:
            out["steady_anon"] = Measure(float(settled["RssAnon"]) - anon0)
        else:
            out["steady_anon"] = Measure(float(statistics.median(steady_anon)) - anon0, _iqr(steady_anon))
    hwm = [v for v in result.series.get("VmHWM", []) if v is not None]
    if hwm and rss0 is not None:
        out["peak_hwm"] = Measure(float(hwm[-1]) - rss0, slack=mapped, file=file_moved)
    deciding = result.verdicts.get("RssAnon") or result.verdicts.get("VmRSS")
    if deciding and deciding.get("slope") is not None:
        low, high = deciding.get("slope_low"), deciding.get("slope_high")
        half = (high - low) / 2 if low is not None and high is not None else 0.0
        out["growth"] = Measure(float(deciding["slope"]), float(half))
    latency = [v for v in result.latency[start:] if v is not None]
    if latency:
        out["latency"] = Measure(float(statistics.median(latency)), _iqr(latency))
    out.update(heap_measures(result))
    return out


def heap_measures(result: CellResult) -> dict[str, Measure]:
    """The live-heap metrics of a finished cell (empty where its allocator's counter was not read)."""
    out: dict[str, Measure] = {}
    for s in result.stages:
        delta = getattr(s, "heap_delta", None)
        if delta is not None:
            out[f"heap_delta:{s.stage}"] = Measure(float(delta))
    verdict = result.verdicts.get("HeapLive") or {}
    start = int(verdict.get("warmup_end") or 0) if verdict.get("n") else result.iterations_done // 2
    heap = [v for v in result.series.get("HeapLive", [])[start:] if v is not None]
    heap0 = result.stages[0].heap_before if result.stages else None
    if heap and heap0 is not None:  # like every level, above the child's state after its imports
        out["steady_heap"] = Measure(float(statistics.median(heap)) - heap0, _iqr(heap))
    if verdict.get("slope") is not None:
        low, high = verdict.get("slope_low"), verdict.get("slope_high")
        half = (high - low) / 2 if low is not None and high is not None else 0.0
        out["heap_growth"] = Measure(float(verdict["slope"]), float(half))
    return out


def pooled(cells: Sequence[CellResult]) -> dict[str, tuple[float, float, int, float]]:
    """metric -> (median value, spread, runs, slack) over the finished runs of one cell."""
    runs = _runs(cells)
    return {name: (*pool(values), len(values), max(v.slack for v in values)) for name, values in runs.items()}


def pooled_file(cells: Sequence[CellResult]) -> dict[str, float]:
    """metric -> median file-backed part over the runs of one cell, for the VmRSS/VmHWM figures that have one."""
    out = {}
    for name, values in _runs(cells).items():
        files = [v.file for v in values if v.file is not None]
        if files:
            out[name] = float(statistics.median(files))
    return out


def _runs(cells: Sequence[CellResult]) -> dict[str, list[Measure]]:
    runs: dict[str, list[Measure]] = {}
    for c in cells:
        for name, value in measure(c).items():
            runs.setdefault(name, []).append(value)
    return runs


#: The RssAnon figure beside each VmRSS/VmHWM one: what the program itself holds of the same move.
def anon_twin(metric: str) -> str | None:
    """``rss_delta:compile`` -> ``anon_delta:compile``; ``steady_rss``/``peak_hwm`` -> ``steady_anon``."""
    k, _, stage = metric.partition(":")
    if k in ("rss_delta", "hwm_delta"):
        return f"anon_delta:{stage}"
    if k in ("steady_rss", "peak_hwm"):
        return "steady_anon"
    return None


def rounded(metric: str, x: float) -> float | int:
    """Bytes as whole numbers, seconds to 0.1 µs: the stored figures stay short and stable."""
    return round(x, 7) if unit(metric) == "seconds" else int(round(x))


def pool(runs: Sequence[Measure]) -> tuple[float, float]:
    """(median value, spread) of one metric over repeated runs: spread = max(range, within-run spread)."""
    values = [m.value for m in runs]
    spread = max([max(values) - min(values)] + [m.spread for m in runs])
    return float(statistics.median(values)), float(spread)


def _steady_start(result: CellResult) -> int:
    """Where the steady part begins: the deciding verdict's warm-up end, else half the run."""
    for name in ("RssAnon", "VmRSS"):
        v = result.verdicts.get(name)
        if v and v.get("n"):
            return int(v.get("warmup_end") or 0)
    return result.iterations_done // 2


def _file_pages_mapped(result: CellResult, start: int) -> float | None:
    """File-backed bytes resident in the steady part beyond those at the cell's start (mapped weights).

    Signed (a library's pages may be reclaimed); None when the start or the steady part lacks a sample.
    """
    first = result.stages[0] if result.stages else None
    if first is None or first.rss_before is None or first.anon_before is None:
        return None
    pairs = zip(result.series.get("VmRSS", [])[start:], result.series.get("RssAnon", [])[start:])
    files = [r - a for r, a in pairs if r is not None and a is not None]
    if not files:
        return None
    return float(statistics.median(files)) - (first.rss_before - first.anon_before)


def _iqr(values: Iterable[float]) -> float:
    data = sorted(values)
    if len(data) < 4:
        return 0.0
    q = statistics.quantiles(data, n=4, method="inclusive")
    return float(q[2] - q[0])
