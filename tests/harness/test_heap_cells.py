"""The heap counter in real cells: series, stage figures, the verdict it decides, PYTHONMALLOC=malloc, hunt."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests.runner import run_cell
from stress_tests.spec import CellSpec

from .conftest import installed_allocators

pytestmark = pytest.mark.stress
KiB = 1024


@pytest.mark.parametrize("allocator", installed_allocators())
def test_a_1_kib_leak_is_found_on_the_heap_in_40_iterations(allocator: str, tiny_model_path: Path,
                                                            workdir: Path) -> None:
    r = run_cell(CellSpec(pipeline="reinfer", model=str(tiny_model_path), allocator=allocator, iterations=40,
                          inject_leak_bytes=KiB, timeout=120), workdir=workdir)
    assert r.status == "leak" and r.verdict == "leak", (r.reason, r.verdicts)
    heap = r.verdicts["HeapLive"]
    assert heap["verdict"] == "leak"
    # 1025 bytes of buffer, rounded up to the allocator's size class (at most 1280), plus the list's growth
    assert KiB <= heap["slope"] <= 1400, heap
    assert "HeapLive" in r.reason
    assert r.probe["heap"]["allocator"] == allocator and r.probe["heap"]["fields"][:2] == ["HeapLive", "PyBlocks"]


@pytest.mark.parametrize("allocator", installed_allocators())
def test_clean_cells_have_a_flat_heap_and_stage_heap_figures(allocator: str, tiny_model_path: Path,
                                                             workdir: Path) -> None:
    r = run_cell(CellSpec(pipeline="recreate_request", model=str(tiny_model_path), allocator=allocator,
                          iterations=40, timeout=120), workdir=workdir)
    assert r.status == "ok" and r.verdict == "no-leak", (r.reason, r.verdicts)
    assert r.verdicts["HeapLive"]["verdict"] == r.verdicts["PyBlocks"]["verdict"] == "no-leak"
    assert len(r.series["HeapLive"]) == len(r.series["PyBlocks"]) == 40
    compile_ = next(s for s in r.stages if s.stage == "compile")
    assert compile_.heap_delta is not None
    assert compile_.blocks_delta is not None
    assert all(s.heap_before is not None for s in r.stages)


def test_pythonmalloc_malloc_puts_small_objects_on_the_heap(tiny_model_path: Path, workdir: Path) -> None:
    spec = CellSpec(pipeline="reinfer", model=str(tiny_model_path), iterations=40, inject_leak_bytes=256,
                    python_malloc=True, timeout=120)
    assert spec.id.endswith("/pymalloc=off/leak=256")
    r = run_cell(spec, workdir=workdir)
    assert r.applied is not None and r.applied.env.get("PYTHONMALLOC") == "malloc"
    assert any("pymalloc off" in e for e in r.applied.evidence)
    assert set(r.series["PyBlocks"]) == {0}
    heap = r.verdicts["HeapLive"]
    # the bytearray object and its 257-byte buffer, each a malloc block now (measured 363-627 B/iteration)
    assert r.verdict == "leak" and heap["verdict"] == "leak", r.verdicts
    assert 256 <= heap["slope"] <= 768, heap


def test_hunt_snapshots_are_not_counted_as_the_programs_heap(tiny_model_path: Path, workdir: Path) -> None:
    r = run_cell(CellSpec(pipeline="reinfer", model=str(tiny_model_path), iterations=40, tracemalloc=1,
                          timeout=120), workdir=workdir)
    assert r.status == "ok", r.reason
    assert r.verdicts["HeapLive"]["verdict"] == "no-leak", r.verdicts["HeapLive"]
    assert r.verdicts["PyBlocks"]["verdict"] == "no-leak", r.verdicts["PyBlocks"]


def test_run_names_the_heap_counter_and_its_verdict(tiny_model_path: Path, workdir: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from stress_tests import cli

    monkeypatch.delenv("MEMGATE_ALLOCATOR", raising=False)  # glibc, as named by default
    code = cli.main(["run", "--model", str(tiny_model_path), "--iterations", "30", "--inject-leak", "1KiB",
                     "--workdir", str(workdir)])
    text = capsys.readouterr().out
    assert code == 1 and "heap counter: mallinfo2" in text and "HeapLive" in text
    assert "memory grows: HeapLive +1.0 KiB/iteration" in text


def test_rss_kept_by_the_allocator_over_a_flat_heap_is_retention(tiny_model_path: Path, workdir: Path) -> None:
    # A temporary that grows 64 KiB per iteration and is freed each time; glibc told never to trim keeps
    # the pages: RSS grows, what the program holds does not.
    inject = Path(__file__).with_name("native_inject")
    env = dict(__import__("os").environ, MEMGATE_TEST_NATIVE_LEAK="retain",
               PYTHONPATH=str(inject) + ":" + __import__("os").environ.get("PYTHONPATH", ""))
    spec = CellSpec(pipeline="reinfer", model=str(tiny_model_path), iterations=40, inject_leak_bytes=64 * KiB,
                    tunables=(("trim_threshold", "1GiB"), ("mmap_threshold", "32MiB")), timeout=120)
    r = run_cell(spec, workdir=workdir, base_env=env)
    assert r.verdicts["RssAnon"]["verdict"] == "leak" and r.verdicts["HeapLive"]["verdict"] == "no-leak", r.verdicts
    assert r.verdict == "retention" and r.status == "ok" and not r.bad
    assert any(n.startswith("retention:") for n in r.notes)
