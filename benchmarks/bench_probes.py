"""Cost of one probe sample, and of the whole per-iteration measurement, in a worker-like process.

    python benchmarks/bench_probes.py          # a table on stdout
    pytest benchmarks/bench_probes.py          # the same through pytest-benchmark

The process imports numpy and the runtime first, so /proc/self/status and the garbage
collector see a heap the size a worker's is. The heap counters (``stress_tests.heap``) are timed
per installed allocator, each in a child under its preload (``--heap-child``), with the whole
per-iteration measurement (gc, peak reset, /proc sample, heap sample, journal line) beside them.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import runtime  # noqa: E402,F401  (a realistic heap: numpy, onnx, the runtime)
from stress_tests.journal import Journal  # noqa: E402
from stress_tests.probes import ProcProbe, PsutilProbe, SeriesBuffer  # noqa: E402


def cases() -> dict[str, Callable[[], object]]:
    proc = ProcProbe()
    ps = PsutilProbe()
    buf = SeriesBuffer(proc.fields, 1)
    journal = Journal(os.path.join(tempfile.mkdtemp(prefix="bench-"), "j.jsonl"))
    row = [0] * len(proc.fields)

    def iteration() -> None:  # what the worker adds to every iteration (besides the pipeline)
        gc.collect()
        proc.reset_peak()
        proc.sample_into(buf.data, 0)
        journal.sample(0, row, 0.001)

    return {
        "statm (kept fd, pread)": proc.statm,
        "status -> series buffer (kept fd, pread)": lambda: proc.sample_into(buf.data, 0),
        "status -> dict": proc.sample,
        "clear_refs peak reset": proc.reset_peak,
        "psutil memory_info + threads": ps.sample,
        "gc.collect()": gc.collect,
        "whole per-iteration overhead": iteration,
    }


def frozen_cases() -> dict[str, Callable[[], object]]:
    """As the worker runs: what imports created is frozen out of the collector's sight first."""
    all_cases = cases()
    gc.collect()
    gc.freeze()
    return {f"{name}, after gc.freeze()": all_cases[name] for name in ("gc.collect()", "whole per-iteration overhead")}


def measure(fn: Callable[[], object], number: int = 500, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean seconds per call (the least disturbed estimate)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def heap_child(allocator: str, path: str | None) -> dict[str, float]:
    """In a child preloaded with ``allocator``: µs per heap read, per sample and per whole iteration."""
    from stress_tests.heap import open_counter

    counter = open_counter(allocator, path)
    proc = ProcProbe()
    fields = tuple(proc.fields) + counter.fields
    buf = SeriesBuffer(fields, 1)
    journal = Journal(os.path.join(tempfile.mkdtemp(prefix="bench-"), "j.jsonl"))
    row = [0] * len(fields)
    at = len(proc.fields)

    def iteration(with_heap: bool) -> None:
        gc.collect()
        proc.reset_peak()
        proc.sample_into(buf.data, 0)
        if with_heap:
            counter.sample_into(buf.data, at)
        journal.sample(0, row, 0.001)

    gc.collect()
    gc.freeze()  # as the worker does
    return {"source": counter.source,  # type: ignore[dict-item]
            "live": measure(counter.live, 2000) * 1e6,
            "sample": measure(lambda: counter.sample_into(buf.data, at), 2000) * 1e6,
            "getallocatedblocks": measure(sys.getallocatedblocks, 2000) * 1e6,
            "iteration": measure(lambda: iteration(True), 200) * 1e6,
            "iteration_without_heap": measure(lambda: iteration(False), 200) * 1e6}


def heap_costs() -> dict[str, dict[str, float]]:
    """Run ``heap_child`` under every installed allocator."""
    from stress_tests import allocators

    out = {}
    for found in allocators.discover():
        if not found.installed:
            continue
        env, _ = allocators.child_environment(found, (), os.environ)
        cmd = [sys.executable, __file__, "--heap-child", found.name, found.path or ""]
        text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
        out[found.name] = json.loads(text.strip().splitlines()[-1])
    return out


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--heap-child":
        print(json.dumps(heap_child(sys.argv[2], sys.argv[3] or None)))
        return
    print(f"{'what':60} {'µs per call':>12}")
    for table in (cases, frozen_cases):  # in this order: freezing cannot be undone
        for name, fn in table().items():
            number = 20 if "gc" in name or "whole" in name else 2000
            print(f"{name:60} {measure(fn, number) * 1e6:12.1f}")
    print()
    print(f"{'allocator':10} {'heap read':>10} {'blocks':>8} {'sample':>8} {'iteration':>10} {'without':>8}  source"
          "   (µs per call; iteration: gc, reset, /proc, heap sample, journal)")
    for name, c in heap_costs().items():
        print(f"{name:10} {c['live']:10.1f} {c['getallocatedblocks']:8.1f} {c['sample']:8.1f} {c['iteration']:10.1f} "
              f"{c['iteration_without_heap']:8.1f}  {c['source']}")


def test_bench_status_sample(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(cases()["status -> series buffer (kept fd, pread)"])


def test_bench_statm(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(cases()["statm (kept fd, pread)"])


def test_bench_whole_iteration(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(frozen_cases()["whole per-iteration overhead, after gc.freeze()"])


def test_bench_heap_counter(benchmark) -> None:  # type: ignore[no-untyped-def]
    from stress_tests.heap import open_counter

    benchmark(open_counter("glibc").live)  # this process runs on glibc unless a preload says otherwise


if __name__ == "__main__":
    main()
