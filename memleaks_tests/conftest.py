"""The memleaks suite: every selected cell runs once, in parallel, the first time a test asks for it.

Allocator and settings come from the environment (the tox factors set them): ``MEMGATE_ALLOCATOR``
(glibc, jemalloc, tcmalloc, mimalloc) and ``MEMGATE_TUNABLES`` (a profile name - default, arena1,
trim - or ``KEY=VALUE,...``); ``MEMGATE_JOBS`` cells run at a time (default: the CPU count, at most 4).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stress_tests.runner import run_cells
from stress_tests.spec import CellResult, CellSpec


class CellBatch:
    """Runs every spec the session selected in one parallel batch, then hands results out by spec."""

    def __init__(self, workdir: Path, specs: list[CellSpec]) -> None:
        self.workdir = workdir
        self.pending = list(dict.fromkeys(specs))
        self.done: dict[CellSpec, CellResult] = {}

    def result(self, spec: CellSpec) -> CellResult:
        if spec not in self.done:
            batch = [s for s in self.pending if s not in self.done] or [spec]
            if spec not in batch:
                batch.append(spec)
            jobs = int(os.environ.get("MEMGATE_JOBS", "0")) or max(1, min(4, os.cpu_count() or 1))
            for s, r in zip(batch, run_cells(batch, jobs=jobs, workdir=self.workdir)):
                self.done[s] = r
        return self.done[spec]


@pytest.fixture(scope="session")
def cells(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          cell_settings: dict[str, object]) -> Iterator[CellBatch]:
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        make = callspec.params.get("case") if callspec is not None else None
        if make is not None and hasattr(make, "spec"):
            wanted.append(make.spec(**cell_settings))
    yield CellBatch(tmp_path_factory.mktemp("memleaks"), wanted)
