"""Each case runs a harness cell (own process, the environment's allocator) and must not leak.

``inconclusive`` passes: it says the run was too short to decide, never that memory grew; the
full tier's thousands of iterations are where those get decided.
"""

from __future__ import annotations

import pytest

from stress_tests.units import format_size

from .cases import FULL, QUICK, Case
from .conftest import CellBatch

pytestmark = pytest.mark.stress


def check(case: Case, cells: CellBatch, settings: dict[str, object]) -> None:
    r = cells.result(case.spec(**settings))  # type: ignore[arg-type]
    grown = {k: format_size(v.get("slope"), signed=True) for k, v in r.verdicts.items() if v.get("verdict") == "leak"}
    assert r.verdict != "leak", f"{r.spec.id} leaks: {grown}; {r.reason}"
    assert r.status == "ok", f"{r.spec.id}: {r.status}: {r.reason}\n{r.stderr_tail[-2000:]}"
    assert r.iterations_done == r.spec.total_iterations
    assert r.applied is not None and r.applied.verified, r.applied


@pytest.mark.parametrize("case", QUICK, ids=lambda c: c.id)
def test_no_leak(case: Case, cells: CellBatch, cell_settings: dict[str, object]) -> None:
    check(case, cells, cell_settings)


@pytest.mark.full
@pytest.mark.parametrize("case", FULL, ids=lambda c: c.id)
def test_no_leak_nightly(case: Case, cells: CellBatch, cell_settings: dict[str, object]) -> None:
    check(case, cells, cell_settings)
