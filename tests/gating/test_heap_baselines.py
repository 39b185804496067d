"""Baseline schema version 2: the live-heap metrics recorded, gated, and version-1 files still read."""

from __future__ import annotations

import json
from pathlib import Path

from stress_tests import metrics
from stress_tests.baselines import compare, read_baseline, update
from stress_tests.spec import CellResult

from .helpers import GLIBC_KEY, MiB, cell, results


def heap_cell(compile_heap: int = 8 * MiB, heap: int = 9 * MiB, heap_growth: float = 0.0, **kw: object) -> CellResult:
    """``helpers.cell`` with the heap counter's figures: compile keeps ``compile_heap`` live bytes."""
    c = cell(**kw)  # type: ignore[arg-type]
    base = 2 * MiB
    for s in c.stages:
        s.heap_before, s.heap_after = base, base + (compile_heap if s.stage == "compile" else 0)
        s.blocks_before = s.blocks_after = 170_000
    n = c.spec.iterations
    c.series["HeapLive"] = [int(heap + heap_growth * i) for i in range(n)]
    c.series["PyBlocks"] = [170_000] * n
    c.verdicts["HeapLive"] = {"metric": "HeapLive", "verdict": "no-leak", "n": n, "warmup_end": 0,
                              "slope": heap_growth, "slope_low": heap_growth - 10, "slope_high": heap_growth + 10}
    return c


def test_heap_metrics_are_measured() -> None:
    got = metrics.measure(heap_cell())
    assert got["heap_delta:compile"].value == 8 * MiB and got["heap_delta:create_core"].value == 0
    # a level, like every level, above the child's state after its imports (2 MiB of heap here)
    assert got["steady_heap"].value == 7 * MiB and got["heap_growth"].value == 0.0
    assert metrics.tolerance("heap_delta:compile", 8 * MiB, 0) == 1 * MiB  # max(10%, 1 MiB)
    assert not {k for k in metrics.measure(cell()) if k.startswith(("heap", "steady_heap"))}  # no counter: none


def test_update_writes_version_2_with_heap_metrics(tmp_path: Path) -> None:
    [change] = update([results(heap_cell())], tmp_path)
    data = read_baseline(change.path)
    assert data["version"] == 2
    entry = data["entries"]["reinfer/mlp/default/builtin"]
    assert {"heap_delta:compile", "steady_heap", "heap_growth"} <= set(entry["metrics"])
    assert entry["metrics"]["heap_growth"]["unit"] == "bytes/iteration"


def test_a_heap_regression_fails_the_gate_while_rss_is_unchanged(tmp_path: Path) -> None:
    update([results(heap_cell())], tmp_path)
    c = compare(results(heap_cell(compile_heap=24 * MiB)), tmp_path)
    assert {r["metric"] for r in c.regressions()} == {"heap_delta:compile"}
    assert c.failed()


def version_1(tmp_path: Path) -> Path:
    """A baseline as memgate wrote it before the heap counters: version 1, no heap metrics."""
    [change] = update([results(cell())], tmp_path)
    data = json.loads(change.path.read_text())
    data["version"] = 1
    change.path.write_text(json.dumps(data))
    return change.path


def test_version_1_files_are_read_and_their_missing_heap_metrics_fail_nothing(tmp_path: Path) -> None:
    path = version_1(tmp_path)
    assert read_baseline(path)["migrated_from"] == 1  # read, and brought to the current version
    c = compare(results(heap_cell()), tmp_path)
    assert not c.new() and {r["verdict"] for r in c.rows} == {"ok"}
    assert not {r["metric"] for r in c.rows if r["metric"].startswith(("heap", "steady_heap"))}
    assert not c.failed(strict=True)  # the file could not have recorded them
    assert any("predates the heap metrics" in w for w in c.warnings)
    assert c.env_key == GLIBC_KEY


def test_updating_a_version_1_file_makes_it_version_2(tmp_path: Path) -> None:
    path = version_1(tmp_path)
    update([results(heap_cell())], tmp_path)
    data = read_baseline(path)
    assert data["version"] == 2 and "steady_heap" in data["entries"]["reinfer/mlp/default/builtin"]["metrics"]


def test_pymalloc_off_cells_have_their_own_baseline_entry() -> None:
    from stress_tests.spec import CellSpec

    assert metrics.entry_key(CellSpec(python_malloc=True)) == "reinfer/mlp{pymalloc=off}/default/builtin"
    assert metrics.entry_key(CellSpec()) == "reinfer/mlp/default/builtin"
