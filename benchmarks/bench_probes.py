"""Cost of one probe sample, and of the whole per-iteration measurement, in a worker-like process.

    python benchmarks/bench_probes.py          # a table on stdout
    pytest benchmarks/bench_probes.py          # the same through pytest-benchmark

The process imports numpy and the runtime first, so /proc/self/status and the garbage
collector see a heap the size a worker's is.
"""

from __future__ import annotations

import gc
import os
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


def main() -> None:
    print(f"{'what':60} {'µs per call':>12}")
    for table in (cases, frozen_cases):  # in this order: freezing cannot be undone
        for name, fn in table().items():
            number = 20 if "gc" in name or "whole" in name else 2000
            print(f"{name:60} {measure(fn, number) * 1e6:12.1f}")


def test_bench_status_sample(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(cases()["status -> series buffer (kept fd, pread)"])


def test_bench_statm(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(cases()["statm (kept fd, pread)"])


def test_bench_whole_iteration(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark(frozen_cases()["whole per-iteration overhead, after gc.freeze()"])


if __name__ == "__main__":
    main()
