"""The gate through real children, against the committed baselines of this environment.

A clean run passes; a leak injected by the harness's self-test and a bigger Conv scratch buffer
injected into the runtime (``inject/sitecustomize.py``, the runtime's code untouched) each fail
``compare`` with the metric that moved named. Skipped where no baseline was recorded for this
environment (another OS, Python, numpy major or allocator version).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stress_tests import cli
from stress_tests.baselines import Comparison, compare, load_dir
from stress_tests.environment import fingerprint
from stress_tests.plugin.gating import missing_baseline
from stress_tests.profiles import env_key
from stress_tests.results import Results, write_results
from stress_tests.runner import run_cell, run_cells
from stress_tests.spec import CellSpec

pytestmark = pytest.mark.stress
ROOT = Path(__file__).resolve().parents[2]
BASELINES = ROOT / "baselines"
INJECT = Path(__file__).resolve().parent / "inject"
MiB = 1 << 20
# Cells of the quick gating set: the committed baselines have them.
MEMCHECK = CellSpec(pipeline="memcheck", model="u2netp", model_options=(("size", "64"),), iterations=1)
REINFER = CellSpec(pipeline="reinfer", model="mlp", iterations=60)


@pytest.fixture(scope="module")
def glibc_baseline() -> dict:
    fp = fingerprint(allocators=False)
    stored = load_dir(BASELINES).get(env_key(fp, "glibc"))
    if stored is None:
        missing_baseline(f"no committed baseline for {env_key(fp, 'glibc')}")
    if stored["environment"].get("allocator_version") != fp.get("glibc"):
        missing_baseline(f"baselines recorded with glibc {stored['environment'].get('allocator_version')}, "
                         f"this is {fp.get('glibc')}")
    return stored


@pytest.fixture(scope="module")
def runs(glibc_baseline: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Comparison]:
    """Clean cells, an injected leak and an injected scratch regression, compared with the baselines."""
    work = tmp_path_factory.mktemp("gate")
    leak = REINFER.replace(inject_leak_bytes=256 << 10)
    clean_memcheck, clean_reinfer, leaked = run_cells([MEMCHECK, REINFER, leak], jobs=2, workdir=work)
    env = dict(os.environ, MEMGATE_TEST_CONV_SCRATCH=str(16 * MiB),
               PYTHONPATH=os.pathsep.join([str(INJECT), os.environ.get("PYTHONPATH", "")]))
    scratch = run_cell(MEMCHECK, workdir=work, base_env=env)
    fp = fingerprint(allocators=False)
    out = {}
    for name, cells in (("clean", [clean_memcheck, clean_reinfer]), ("leak", [leaked]), ("scratch", [scratch])):
        results = Results(cells, fp)
        write_results(work / f"{name}.json", cells, fp)
        out[name] = compare(results, BASELINES)
    out["paths"] = work  # type: ignore[assignment]
    return out


def test_a_clean_run_passes(runs: dict[str, Comparison]) -> None:
    c = runs["clean"]
    assert not c.missing_files and not c.new(), c.new()
    assert not c.regressions(), [(r["cell"], r["metric"], r["baseline"], r["current"]) for r in c.regressions()]
    assert {r["verdict"] for r in c.rows} <= {"ok", "improvement"}


def test_an_injected_leak_fails_on_growth(runs: dict[str, Comparison], capsys: pytest.CaptureFixture[str]) -> None:
    regressed = {r["metric"] for r in runs["leak"].regressions()}
    # what the program holds: its growth and its steady RssAnon; VmRSS figures may absorb it in file-backed slack
    assert "growth" in regressed and "steady_anon" in regressed
    growth = next(r for r in runs["leak"].regressions() if r["metric"] == "growth")
    assert 256 << 10 <= growth["current"] <= (256 << 10) + 3 * 4096
    code = cli.main(["compare", str(runs["paths"] / "leak.json"), "--baselines", str(BASELINES)])  # type: ignore
    text = capsys.readouterr().out
    assert code == 1 and "growth per iteration" in text and "regression" in text


def test_a_bigger_scratch_buffer_fails_on_the_inference_stage(runs: dict[str, Comparison],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    regressed = {r["metric"] for r in runs["scratch"].regressions()}
    assert {"hwm_delta:infer", "rss_delta:infer"} <= regressed, regressed
    assert not regressed & {"hwm_delta:compile", "hwm_delta:read_model"}, "only the stages that run Conv moved"
    [peak] = [r for r in runs["scratch"].rows if r["metric"] == "hwm_delta:infer"]
    assert peak["current"] - peak["baseline"] >= 12 * MiB
    code = cli.main(["compare", str(runs["paths"] / "scratch.json"), "--changes-only"])  # type: ignore
    text = capsys.readouterr().out
    assert code == 1 and "infer" in text and "regression" in text


def test_check_passes_on_a_clean_run(glibc_baseline: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["check", "--models", "mlp", "--allocators", "glibc", "--out", str(tmp_path / "report"),
                     "--baselines", str(BASELINES), "--strict"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "PASSED" in text and (tmp_path / "report" / "results.json").exists()
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "report" / "summary.md").exists()
