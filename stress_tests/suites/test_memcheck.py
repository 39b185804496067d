"""Memcheck-style: each stage's memory (RSS change, peak above start) of a fresh process, against the baselines.

The cells are the gating set's memcheck rows under the allocator and settings the environment
chose; a stage that grew beyond its tolerance fails and names the stage. Without a baseline file
for this environment the tests skip (record one with ``memgate baseline update``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests import gate
from stress_tests.baselines import compare, load_dir
from stress_tests.environment import fingerprint
from stress_tests.plugin.gating import missing_baseline
from stress_tests.profiles import env_key
from stress_tests.results import Results
from stress_tests.runner import run_cells

pytestmark = pytest.mark.stress
BASELINES = Path(__file__).resolve().parents[2] / "baselines"


def memcheck_rows(full: bool) -> list[gate.Row]:
    return [r for r in (gate.FULL if full else gate.QUICK) if r.pipeline == "memcheck"]


def run_and_compare(rows: list[gate.Row], settings: dict, workdir: Path) -> None:
    fp = fingerprint(allocators=False)
    key = env_key(fp, settings["allocator"], settings["tunables"], settings["trim"])
    if key not in load_dir(BASELINES):
        missing_baseline(f"no baselines/{key}.json for this environment")
    specs = [s.replace(tunables=settings["tunables"], trim=settings["trim"])
             for s in gate.specs(rows, [settings["allocator"]], ["default"])]
    cells = run_cells(specs, jobs=gate.default_jobs(), workdir=workdir)
    for c in cells:
        assert c.status == "ok", f"{c.spec.id}: {c.status}: {c.reason}"
    comparison = compare(Results(cells, fp), BASELINES)
    staged = [r for r in comparison.rows if r["metric"].startswith(("hwm_delta:", "rss_delta:"))]
    assert staged, "no stage was compared"
    bad = [f"{r['cell']} {r['metric']}: {r['current']} vs {r['baseline']} ± {r['tolerance']}"
           for r in staged if r["verdict"] in ("regression", "missing")]
    assert not bad, "stage memory beyond the baseline:\n" + "\n".join(bad)


def test_stage_memory_within_baseline(cell_settings: dict, tmp_path: Path) -> None:
    run_and_compare(memcheck_rows(full=False), cell_settings, tmp_path)


@pytest.mark.full
def test_stage_memory_within_baseline_nightly(cell_settings: dict, tmp_path: Path) -> None:
    run_and_compare(memcheck_rows(full=True), cell_settings, tmp_path)
