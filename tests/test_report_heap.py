"""The report with the heap counter's figures: the verdict it decides, its panels, retention, stage heap deltas."""

from __future__ import annotations

import re
from pathlib import Path

from stress_tests.report import INDEX, SUMMARY, write_report
from stress_tests.report.plots import fit_line
from stress_tests.results import Results
from stress_tests.runner import finish
from stress_tests.spec import Applied, CellResult, CellSpec, StageMemory

from .test_report import FINGERPRINT

MiB, KiB = 1 << 20, 1 << 10


def heap_cell(heap_leak: int = 0, rss_growth: int = 0, n: int = 60) -> CellResult:
    """RSS flat (or growing), the live heap flat (or leaking), Python's blocks flat."""
    rss = [50 * MiB + i * rss_growth for i in range(n)]
    series = {"VmRSS": rss, "VmHWM": rss, "RssAnon": [r - 20 * MiB for r in rss],
              "HeapLive": [9 * MiB + i * heap_leak for i in range(n)], "PyBlocks": [170_000] * n}
    stages = [StageMemory("compile", 48 * MiB, 50 * MiB, 28 * MiB, 30 * MiB, 53 * MiB, heap_before=8 * MiB,
                          heap_after=9 * MiB + 512 * KiB, blocks_before=169_000, blocks_after=170_000)]
    spec = CellSpec(iterations=n, inject_leak_bytes=heap_leak)
    return finish(CellResult(spec, "ok", series=series, latency=[0.001] * n, stages=stages,  # type: ignore[arg-type]
                             applied=Applied("glibc", verified=True)))


def test_a_heap_leak_rss_misses_and_retention_read_as_such(tmp_path: Path) -> None:
    leak, kept = heap_cell(heap_leak=KiB), heap_cell(rss_growth=64 * KiB)
    assert leak.verdict == "leak" and kept.verdict == "retention" and kept.status == "ok"
    write_report(Results([leak, kept], FINGERPRINT), tmp_path)
    summary = (tmp_path / SUMMARY).read_text()
    assert "memory grows: HeapLive +1.0 KiB/iteration" in summary
    assert re.search(r"\| retention \|", summary) and "**retention**" in summary  # the verdict and how to read it
    assert "Δ live heap" in summary and "+1.5 MiB" in summary  # the compile stage kept 1.5 MiB of heap
    html = (tmp_path / INDEX).read_text()
    assert "HeapLive" in html and "PyBlocks" in html


def test_fit_line_of_blocks_is_in_blocks_not_mib() -> None:
    values = [170_000 + 16 * i for i in range(40)]
    verdict = {"metric": "PyBlocks", "slope": 16.0, "warmup_end": 0}
    xs, ys = fit_line(values, verdict)  # type: ignore[misc]
    assert xs == [0, 39] and abs(ys[0] - 170_000) < 1 and abs(ys[1] - (170_000 + 16 * 39)) < 1
