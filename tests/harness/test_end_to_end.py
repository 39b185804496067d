"""End to end through real children: the self-test leak is caught with the right size, clean runs are clean."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stress_tests import cli
from stress_tests.results import read_results
from stress_tests.runner import run_cell
from stress_tests.spec import CellResult, CellSpec

from .conftest import installed_allocators

pytestmark = pytest.mark.stress
HAVE_ANALYSIS = importlib.util.find_spec("stress_tests.analysis") is not None
LEAK = 64 << 10
# The allocator rounds a block up (jemalloc's size classes, a page of header): the growth is the
# injected size plus at most two pages, never less.
SLACK = 3 * 4096


def raw_growth(values: list[int | None]) -> float:
    """Median per-iteration change over the second half: robust to warm-up, no statistics module needed."""
    tail = [v for v in values[len(values) // 2:] if v is not None]
    diffs = sorted(b - a for a, b in zip(tail, tail[1:]))
    return float(diffs[len(diffs) // 2])


def test_injected_leak_is_found_with_its_size(tiny_model_path: Path, workdir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "leak.json"
    code = cli.main(["run", "--pipeline", "reinfer", "--model", str(tiny_model_path), "--inject-leak", "64KiB",
                     "--iterations", "40", "--json", str(out), "--workdir", str(workdir)])
    text = capsys.readouterr().out
    [cell] = read_results(out).cells
    assert cell.applied is not None and cell.applied.verified
    if HAVE_ANALYSIS:
        assert code == 1 and cell.status == "leak" and cell.verdict == "leak", text
        slope = cell.verdicts["RssAnon"]["slope"]
        assert LEAK <= slope <= LEAK + SLACK
        assert "growth per iteration" in text and "memory per stage" in text
    else:
        assert LEAK <= raw_growth(cell.series["RssAnon"]) <= LEAK + SLACK


def test_clean_runs_are_clean_under_every_installed_allocator(tiny_model_path: Path, workdir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "matrix.json"
    names = installed_allocators()
    code = cli.main(["matrix", "--pipeline", "reinfer", "--model", str(tiny_model_path), "--allocator",
                     ",".join(names), "--iterations", "40", "-j", "2", "--json", str(out), "--workdir", str(workdir)])
    text = capsys.readouterr().out
    results = read_results(out)
    assert [c.spec.allocator for c in results.cells] == names
    for cell in results.cells:
        assert cell.status == "ok", (cell.spec.id, cell.reason, cell.stderr_tail)
        assert cell.applied is not None and cell.applied.verified and cell.applied.allocator_version
        if HAVE_ANALYSIS:
            assert cell.verdict == "no-leak", (cell.spec.id, cell.verdicts)
        else:
            assert abs(raw_growth(cell.series["RssAnon"])) < 4096
    assert code == 0, text


def test_hunt_points_at_the_leaking_line(tiny_model_path: Path, workdir: Path) -> None:
    r = run_cell(CellSpec(pipeline="reinfer", model=str(tiny_model_path), inject_leak_bytes=LEAK, iterations=24,
                          tracemalloc=1, timeout=120), workdir=workdir)
    assert r.status in ("ok", "leak"), r.reason
    top = r.hunt[0]
    assert top["site"].split(":")[0].endswith("stress_tests/pipelines.py")
    assert "bytearray" in top["line"]
    assert LEAK <= top["bytes_per_iteration"] <= LEAK + 1024
    traced = [v for v in r.series["py_traced"] if v is not None]
    assert traced[-1] > traced[0]


def test_memcheck_measures_each_stage_once(tiny_model_path: Path, workdir: Path) -> None:
    r: CellResult = run_cell(CellSpec(pipeline="memcheck", model=str(tiny_model_path), iterations=1), workdir=workdir)
    assert r.status == "ok" and not r.series
    assert [s.stage for s in r.stages] == ["create_core", "read_model", "compile", "create_request", "infer",
                                           "infer#2", "release"]
    for s in r.stages:
        assert s.peak is not None and s.rss_before is not None and s.rss_after is not None
        assert s.peak >= max(s.rss_before, s.rss_after)
