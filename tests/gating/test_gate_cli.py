"""The gate's commands: help with examples, usage errors exit 2, the gating set's shape, compare's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress_tests import cli, gate, profiles
from stress_tests.baselines import update
from stress_tests.pipelines import PIPELINES
from stress_tests.results import write_results

from .helpers import FINGERPRINT, MiB, cell, results


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("argv", [("check",), ("compare",), ("baseline",), ("baseline", "update"),
                                  ("baseline", "merge")])
def test_every_help_has_an_example(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, text = run(capsys, *argv, "--help")
    assert code == 0 and f"memgate {' '.join(argv)}" in text
    if len(argv) == 1:
        assert "example:" in text


@pytest.mark.parametrize("argv, message", [
    (("check", "--profile", "arena2"), "unknown profile arena2"),
    (("check", "--allocators", "tcmallok"), "unknown allocator tcmallok"),
    (("check", "--models", "no-such-model"), "unknown model 'no-such-model'"),
    (("compare", "/no/such/results.json"), "not a readable JSON file"),
    (("baseline", "merge", "/no/such.json"), "merge needs --out DIR"),
    (("baseline", "update", "/no/such.json"), "not a readable JSON file"),
    (("baseline",), "required: ACTION"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, text = run(capsys, *argv)
    assert code == 2 and message in text, text


def test_quick_set_covers_every_pipeline_and_mode_on_installed_allocators() -> None:
    rows = gate.gating_set()
    assert {r.pipeline for r in rows} == set(PIPELINES)
    assert {m for r in rows for m in r.modes} == {"default", "reduce", "reuse", "arena"}
    specs = gate.specs(rows, ["glibc", "jemalloc"], ["default", "arena1"], repeat=2)
    assert len(specs) == 2 * 2 * 2 * sum(len(r.modes) for r in rows)
    half = len(specs) // 2
    assert specs[:half] == specs[half:], "repeats run as whole passes"
    jemalloc_one_arena = [s for s in specs if s.allocator == "jemalloc" and s.tunables]
    assert {s.tunables for s in jemalloc_one_arena} == {(("jemalloc.narenas", "1"),)}


def test_blas_kernels_rotate_over_whole_passes_and_undefined_profiles_are_left_out() -> None:
    rows = [gate.Row("reinfer", "mlp")]
    specs = gate.specs(rows, ["glibc", "mimalloc"], ["default", "arena1"], repeat=3,
                       blas_kernels=("SkylakeX", "Haswell"))
    # mimalloc has no arena1 (no knob bounds its per-thread heaps): 3 cells a pass, not 4
    assert [(s.allocator, s.tunables) for s in specs[:3]] == [("glibc", ()), ("glibc", (("arena_max", "1"),)),
                                                              ("mimalloc", ())]
    assert [s.blas_kernel for s in specs] == ["SkylakeX"] * 3 + ["Haswell"] * 3 + ["SkylakeX"] * 3
    with pytest.raises(profiles.ProfileError, match="not defined for mimalloc"):
        profiles.settings("arena1", "mimalloc")


def test_blas_kernels_are_checked_against_the_cpu() -> None:
    from stress_tests.environment import check_blas_kernels
    from stress_tests.spec import SpecError

    check_blas_kernels(["Haswell", "Sandybridge"], flags={"avx", "avx2"})
    with pytest.raises(SpecError, match="needs the CPU flag avx512f"):
        check_blas_kernels(["SkylakeX"], flags={"avx", "avx2"})
    with pytest.raises(SpecError, match="unknown BLAS kernel 'Skylake'"):
        check_blas_kernels(["Skylake"], flags={"avx"})


def test_models_narrow_the_set_and_add_what_it_lacks() -> None:
    assert {r.model for r in gate.gating_set(["mlp"])} == {"mlp"}
    added = gate.gating_set(["resnet50"])
    assert {r.pipeline for r in added} == {"reinfer", "recreate_request", "memcheck"}
    assert all(r.iterations >= 1000 or r.pipeline == "memcheck" for r in gate.gating_set(["resnet50"], full=True))


def test_compare_prints_a_table_per_metric_and_exits_1_on_regression(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    update([results(cell())], tmp_path / "baselines")
    clean, worse = tmp_path / "clean.json", tmp_path / "worse.json"
    write_results(clean, [cell()], FINGERPRINT)
    write_results(worse, [cell(compile_peak=30 * MiB)], FINGERPRINT)
    code, text = run(capsys, "compare", str(clean), "--baselines", str(tmp_path / "baselines"))
    assert code == 0
    for title in ("RSS change per stage", "peak above start per stage", "steady-state RSS", "growth per iteration",
                  "steady latency per iteration"):
        assert title in text
    code, text = run(capsys, "compare", str(worse), "--baselines", str(tmp_path / "baselines"), "--changes-only")
    assert code == 1 and "regression" in text and "compile" in text and "30.0 MiB" in text


def test_compare_warns_without_baseline_and_fails_when_strict(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    write_results(path, [cell()], FINGERPRINT)
    code, text = run(capsys, "compare", str(path), "--baselines", str(tmp_path / "none"))
    assert code == 0 and "no baseline file for" in text
    code, _ = run(capsys, "compare", str(path), "--baselines", str(tmp_path / "none"), "--strict")
    assert code == 1


def test_baseline_update_and_merge_print_what_they_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    write_results(path, [cell(), cell(model="bert")], FINGERPRINT)
    code, text = run(capsys, "baseline", "update", str(path), "--baselines", str(tmp_path / "b"))
    assert code == 0 and "2 added" in text and "+ reinfer/bert/default/builtin" in text
    code, text = run(capsys, "baseline", "merge", str(path), str(path), "--out", str(tmp_path / "m"))
    assert code == 0 and "2 added" in text


def test_check_summary_names_the_worst_regression_even_from_a_zero_baseline(tmp_path: Path) -> None:
    from rich.console import Console

    from stress_tests.baselines import compare

    update([results(cell())], tmp_path)
    leaked = cell(growth=64 * 1024, status="leak", inject_leak_bytes=64 * 1024)
    comparison = compare(results(leaked), tmp_path)
    console = Console(record=True, width=200)
    gate.check_summary([leaked], comparison, console)
    text = console.export_text()
    assert "reinfer/mlp/default/builtin/glibc" in text and "regression" in text and "growth" in text
