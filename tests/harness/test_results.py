"""The results file: written atomically, read back with validation, never unpickled."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stress_tests.environment import fingerprint, glibc_version
from stress_tests.results import ResultsError, read_results, write_results
from stress_tests.spec import Applied, CellResult, CellSpec, StageMemory


def cells() -> list[CellResult]:
    ok = CellResult(CellSpec(tunables=(("arena_max", "1"),)), "ok", series={"VmRSS": [1, 2], "VmHWM": [3, 3]},
                    latency=[0.1, math.nan], stages=[StageMemory("compile", 1, 2, 0, 1, 9)],
                    applied=Applied(verified=True), verdict="no-leak",
                    verdicts={"VmRSS": {"verdict": "no-leak", "slope": 0.0}})
    crashed = CellResult(CellSpec(allocator="jemalloc"), "crashed", reason="killed by SIGKILL", signal="SIGKILL")
    return [ok, crashed]


@pytest.fixture(scope="module")
def fp() -> dict:
    return fingerprint(allocators=False)


def test_round_trip(tmp_path: Path, fp: dict) -> None:
    path = write_results(tmp_path / "sub" / "r.json", cells(), fp, ["memgate", "run"])
    back = read_results(path)
    assert [c.spec for c in back.cells] == [c.spec for c in cells()]
    assert back.cells[0].latency == [0.1, None]  # strict JSON: NaN is written as null
    assert back.cells[1].signal == "SIGKILL" and back.fingerprint["key"] == fp["key"]
    assert back.command == ["memgate", "run"] and back.created.endswith("Z")
    assert not list(path.parent.glob(".*tmp"))  # the atomic write left no temp file


def test_fingerprint_names_what_results_depend_on(fp: dict) -> None:
    for key in ("cpu", "kernel", "glibc", "python", "numpy", "blas", "runtime", "key"):
        assert key in fp
    if glibc_version():
        assert fp["key"].startswith(f"{fp['os']}-{fp['machine']}-glibc")


def test_rejects_other_files_and_versions(tmp_path: Path, fp: dict) -> None:
    path = write_results(tmp_path / "r.json", cells(), fp)
    data = json.loads(path.read_text())
    (tmp_path / "x.json").write_text(json.dumps({"cells": []}))
    with pytest.raises(ResultsError, match="not a memgate results file"):
        read_results(tmp_path / "x.json")
    data["version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="version 99"):
        read_results(tmp_path / "v.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ResultsError, match="not a readable JSON"):
        read_results(tmp_path / "bad.json")


def test_schema_errors_name_the_place(tmp_path: Path, fp: dict) -> None:
    data = json.loads(write_results(tmp_path / "r.json", cells(), fp).read_text())
    data["cells"][1]["status"] = "exploded"
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="cells/1/status"):
        read_results(tmp_path / "s.json")
    data["cells"][1]["status"] = "ok"
    data["cells"][1]["spec"]["frobnicate"] = 1
    (tmp_path / "f.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match="frobnicate"):
        read_results(tmp_path / "f.json")


def test_version_1_files_are_still_read(tmp_path: Path, fp: dict) -> None:
    path = write_results(tmp_path / "r.json", cells(), fp)
    data = json.loads(path.read_text())
    assert data["version"] == 2
    data["version"] = 1  # as memgate wrote it before the heap counters: no heap fields anywhere
    for cell in data["cells"]:
        del cell["spec"]["python_malloc"]
        for stage in cell["stages"]:
            for key in ("heap_before", "heap_after", "blocks_before", "blocks_after"):
                del stage[key]
    (tmp_path / "v1.json").write_text(json.dumps(data))
    [ok, _] = read_results(tmp_path / "v1.json").cells
    assert ok.stages[0].heap_delta is None and ok.spec.python_malloc is False


def test_heap_figures_and_retention_round_trip(tmp_path: Path, fp: dict) -> None:
    cell = CellResult(CellSpec(), "ok", series={"HeapLive": [5, 5], "PyBlocks": [9, 9]}, verdict="retention",
                      stages=[StageMemory("compile", 1, 2, 0, 1, 9, heap_before=100, heap_after=164,
                                          blocks_before=7, blocks_after=5)])
    [back] = read_results(write_results(tmp_path / "r.json", [cell], fp)).cells
    assert back.verdict == "retention" and back.series["HeapLive"] == [5, 5]
    assert back.stages[0].heap_delta == 64 and back.stages[0].blocks_delta == -2
