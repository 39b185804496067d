"""Synthetic results for the gate's unit tests: no child process, numbers chosen by the test."""

from __future__ import annotations

from typing import Any

from stress_tests.results import Results
from stress_tests.spec import Applied, CellResult, CellSpec, StageMemory

MiB = 1 << 20
FINGERPRINT: dict[str, Any] = {"key": "Linux-x86_64-glibc2.36-py3.11", "os": "Linux", "machine": "x86_64",
                               "python": "3.11.7", "numpy": "2.4.6"}
GLIBC_KEY = "linux-x86_64-py3.11-numpy2-glibc-default"


def cell(pipeline: str = "reinfer", model: str = "mlp", mode: str = "default", allocator: str = "glibc",
         tunables: tuple[tuple[str, str], ...] = (), compile_peak: int = 10 * MiB, rss: int = 50 * MiB,
         growth: float = 0.0, latency: float = 0.001, iterations: int = 40, status: str = "ok",
         inject_leak_bytes: int = 0, file_pages: int = 0) -> CellResult:
    """A finished cell whose compile stage peaks ``compile_peak`` above its start and whose RSS grows ``growth``/it.

    The compile stage's RSS change is anonymous but for ``file_pages`` bytes of mapped files.
    """
    spec = CellSpec(pipeline=pipeline, model=model, mode=mode, allocator=allocator, tunables=tunables,
                    iterations=iterations, inject_leak_bytes=inject_leak_bytes)
    base = 40 * MiB
    stages = [StageMemory("create_core", base, base, base, base, base),
              StageMemory("compile", base, base + compile_peak // 2, base, base + compile_peak // 2 - file_pages,
                          base + compile_peak)]
    series = [int(rss + growth * i) for i in range(iterations)]
    slope = {"metric": "RssAnon", "verdict": "leak" if growth > 4096 else "no-leak", "n": iterations,
             "warmup_end": 0, "slope": growth, "slope_low": growth - 100, "slope_high": growth + 100}
    return CellResult(spec, status, stages=stages, series={"VmRSS": series, "VmHWM": series, "RssAnon": series},
                      latency=[latency] * iterations, verdicts={"RssAnon": slope},
                      verdict=slope["verdict"], applied=Applied(allocator=allocator, allocator_version="2.36"))


def results(*cells: CellResult, fingerprint: dict[str, Any] | None = None) -> Results:
    return Results(list(cells), dict(fingerprint or FINGERPRINT), ["test"], "2025-01-01T00:00:00Z", "0.0.test")
