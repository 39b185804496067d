"""Crashes, exits and hangs of the child: each reported with its cause and the samples gathered."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests import runner
from stress_tests.runner import run_cells
from stress_tests.spec import CellResult, CellSpec

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def faults(tiny_model_path: Path, workdir: Path) -> dict[str, CellResult]:
    """Four faulty children run two at a time (the hang waits for its timeout)."""
    base = CellSpec(pipeline="reinfer", model=str(tiny_model_path), iterations=10, timeout=120)
    specs = {
        "segv": base.replace(inject_fault="signal:SEGV@3"),
        "exit": base.replace(inject_fault="exit:3@2"),
        "hang": base.replace(inject_fault="hang@2", timeout=8),
        "raise": base.replace(inject_fault="raise:boom@4"),
        "kill": base.replace(inject_fault="signal:KILL@1"),
    }
    results = run_cells(list(specs.values()), jobs=2, workdir=workdir)
    return dict(zip(specs, results))


def test_killed_by_a_signal(faults: dict[str, CellResult]) -> None:
    r = faults["segv"]
    assert r.status == "crashed" and r.signal == "SIGSEGV" and r.exit_code == -11
    assert "killed by SIGSEGV after 3 iteration(s)" in r.reason
    assert len(r.series["VmRSS"]) == 3 and len(r.latency) == 3
    assert r.stages and r.applied is not None and r.applied.verified
    assert "Fatal Python error" in r.stderr_tail or "injected fault" in r.stderr_tail


def test_sigkill_is_reported_as_a_possible_oom_kill(faults: dict[str, CellResult]) -> None:
    r = faults["kill"]
    assert r.status == "crashed" and r.signal == "SIGKILL"
    assert "OOM killer" in r.reason and len(r.series["VmRSS"]) == 1


def test_oom_evidence_from_the_cgroup_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_oom_kills", lambda: 3)
    assert "cgroup oom_kill count 2 -> 3" in runner._oom_evidence(2)
    assert "no cgroup OOM evidence" in runner._oom_evidence(3)


def test_non_zero_exit_keeps_stderr(faults: dict[str, CellResult]) -> None:
    r = faults["exit"]
    assert r.status == "crashed" and r.exit_code == 3 and r.signal is None
    assert "exited with code 3" in r.reason and "injected fault exit:3" in r.reason
    assert len(r.series["RssAnon"]) == 2


def test_a_hang_is_killed_at_the_timeout(faults: dict[str, CellResult]) -> None:
    r = faults["hang"]
    assert r.status == "timeout"
    assert "no result after 8 s" in r.reason
    assert len(r.series["VmRSS"]) == 2


def test_an_exception_in_the_pipeline_is_a_failed_cell(faults: dict[str, CellResult]) -> None:
    r = faults["raise"]
    assert r.status == "failed" and r.exit_code == 0
    assert "RuntimeError: injected fault: boom" in r.reason
    assert len(r.series["VmRSS"]) == 4
    assert "Traceback" in r.stderr_tail


def test_a_setup_failure_names_its_stage(tiny_model_path: Path, workdir: Path) -> None:
    [r] = run_cells([CellSpec(pipeline="reinfer", model=str(tiny_model_path), mode="arena", runtime="reference",
                              iterations=3)], workdir=workdir)
    assert r.status == "skipped" and "no memory mode 'arena'" in r.reason
