"""The pytest plugin, through pytester: write a small test file, run pytest on it, match lines and exit codes.

Each inner session runs real cells (a child process each, about a second); a cell shared by two
tests of one file is measured once, which the files below use to keep this quick.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.backends.backend_agg  # noqa: F401
import matplotlib.figure  # noqa: F401
import onnx  # noqa: F401  (protobuf's C descriptors abort when loaded twice; the plugin writes zoo models)
import PIL.Image  # noqa: F401
import pytest

import runtime.zoo  # noqa: F401
import stress_tests.analysis  # noqa: F401
import stress_tests.report  # noqa: F401
from stress_tests.plugin import MemoryCheckFailed, Violation, spec_from
from stress_tests.plugin.markers import memlimit
from stress_tests.spec import CellResult, CellSpec, SpecError, StageMemory

pytest_plugins = ["pytester"]
# The inner sessions run in this process (a second each instead of three), and pytester forgets the
# modules they imported when they end; C extensions (scipy's numpy.fft, matplotlib's) cannot be
# loaded twice in a process, so everything the plugin reaches for is imported above, once (onnx
# too: run alone, this file aborted in its second inner session when protobuf was loaded again).

MiB = 1 << 20


def test_a_clean_cell_passes_and_the_summary_shows_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.memleak(pipeline="reinfer", model="mlp", iterations=40)
        def test_clean(memgate_cell):
            assert memgate_cell.status == "ok" and memgate_cell.verdict == "no-leak"

        def test_factory(memgate_run):  # the same cell: measured once in the session
            assert memgate_run(pipeline="reinfer", iterations=40).verdict == "no-leak"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*memgate: memory of 1 cell(s)*",
                                 "test *cell *verdict *growth *peak RSS *checks",
                                 "*::test_clean *reinfer/mlp/default/builtin/glibc *no-leak *MiB *memleak ok",
                                 "*::test_factory *reinfer/mlp/default/builtin/glibc *no-leak *MiB *-"])


def test_an_injected_leak_fails_the_memleak_marker_naming_the_growth(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        LEAK = dict(iterations=120, inject_leak_bytes="64 KiB")

        @pytest.mark.memleak(**LEAK)
        def test_leaks():
            pass

        @pytest.mark.memleak(max_growth_per_iter="1 MiB", **LEAK)  # the same cell, a tolerant limit
        def test_tolerated():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*MemoryCheckFailed: memleak: reinfer/mlp/default/builtin/glibc/leak=65536: "
        "memory grows: *RssAnon +*KiB/iteration*",
        "*memgate: memory of 1 cell(s)*",
        "*::test_leaks *leak=65536 *leak *+*KiB/it*memleak FAILED",
        "*::test_tolerated *leak=65536 *leak *+*KiB/it*memleak ok",
    ])
    result.stdout.no_fnmatch_line("*plugin.py*")  # the reason, not the plugin's traceback


def test_a_memlimit_under_the_measured_peak_fails_naming_the_stage(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        CELL = dict(pipeline="reinfer", iterations=15)  # a pipeline's cell (without pipeline=: the body's)

        @pytest.mark.memlimit(peak="1 MiB", stage="compile", **CELL)
        def test_too_tight():
            pass

        @pytest.mark.memlimit(peak="64 GiB", stage="compile", delta="1 GiB", **CELL)
        def test_generous():
            pass

        @pytest.mark.memlimit(peak="64 GiB", stage="linking", **CELL)
        def test_no_such_stage():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*MemoryCheckFailed: memlimit: reinfer/mlp/default/builtin/glibc: stage compile peaked at * MiB, "
        "above the 1.0 MiB limit by * MiB*",
    ])
    result.stdout.fnmatch_lines(["*no stage 'linking' in this cell; its stages: create_core, read_model, compile*"])


def test_markers_help_shows_the_docstrings(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "@pytest.mark.memleak(pipeline=..., model=..., iterations=..., max_growth_per_iter=None): "
        "Fail if memory grows every iteration*",
        "@pytest.mark.memlimit(*peak=None, delta=None, stage=None): Fail if the process's peak RSS*",
    ])


def test_bad_marker_keywords_fail_the_test_with_the_known_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.memleak(pipelin="reinfer")
        def test_typo():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r"memgate: unknown cell field\(s\) \['pipelin'\]; known: \[.*'pipeline'"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_command_line_options_override_the_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("memgate_cell", [{"pipeline": "recreate_request", "iterations": 500}], indirect=True)
        def test_cell(memgate_cell):
            assert memgate_cell.spec.pipeline == "recreate_request"
            assert memgate_cell.spec.iterations == 12
            assert memgate_cell.spec.tunables == (("arena_max", "1"),)
    """)
    result = pytester.runpytest("--memgate-iterations", "12", "--memgate-tunable", "arena_max=1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*recreate_request/mlp/default/builtin/glibc/arena_max=1*"])


def test_benchmark_extra_info_carries_the_memory_figures(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_benchmark")
    pytester.makepyfile("""
        import pytest

        @pytest.mark.memleak(iterations=20)
        def test_speed(benchmark, memgate_cell):
            benchmark(sum, range(100))
    """)
    result = pytester.runpytest("--benchmark-json=bench.json", "--benchmark-min-rounds=1",
                                "--benchmark-max-time=0.001", "--benchmark-warmup=off")
    result.assert_outcomes(passed=1)
    [bench] = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    info = bench["extra_info"]
    assert info["memgate_cell"] == "reinfer/mlp/default/builtin/glibc" and info["memgate_verdict"] == "no-leak"
    assert info["memgate_peak_rss"] > 10 * MiB and "compile" in info["memgate_stage_peaks"]


def test_baselines_regression_fails_the_session_and_the_report_is_written(pytester: pytest.Pytester) -> None:
    baselines = pytest.importorskip("stress_tests.baselines")
    from stress_tests.environment import fingerprint
    from stress_tests.results import Results
    from stress_tests.runner import run_cells

    clean = run_cells([CellSpec(iterations=60)], workdir=pytester.path / "work")
    baselines.update([Results(clean, fingerprint(allocators=False))], pytester.path / "baselines")
    pytester.makepyfile("""
        import pytest

        # the marker tolerates the leak; the baseline's growth metric must not
        @pytest.mark.memleak(iterations=60, inject_leak_bytes="256 KiB", max_growth_per_iter="1 GiB")
        def test_grows():
            pass
    """)
    result = pytester.runpytest("--memgate-baselines", "baselines", "--memgate-report", "out",
                                "--memgate-json", "out/results.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*baselines *-glibc-default: *regression*",
                                 "regression: reinfer/mlp/default/builtin/glibc growth: *"])
    assert (pytester.path / "out" / "index.html").exists() and (pytester.path / "out" / "results.json").exists()


# ----------------------------------------------------------------------------- in-process, no child
def _config(**options: Any) -> Any:
    names: dict[str, Any] = {"memgate_allocator": None, "memgate_iterations": None, "memgate_tunables": []}
    names.update(options)
    return SimpleNamespace(getoption=names.__getitem__)


def test_who_decides_the_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMGATE_ALLOCATOR", raising=False)
    monkeypatch.delenv("MEMGATE_TUNABLES", raising=False)
    marker = {"allocator": "glibc", "iterations": 30, "tunables": {"arena_max": "2"}, "inject_leak_bytes": "4 KiB"}
    spec = spec_from(_config(), marker)
    assert (spec.iterations, spec.tunables, spec.inject_leak_bytes) == (30, (("arena_max", "2"),), 4096)
    monkeypatch.setenv("MEMGATE_TUNABLES", "arena1")  # the environment (tox factors) beats the markers
    assert spec_from(_config(), marker).tunables == (("arena_max", "1"),)
    spec = spec_from(_config(memgate_iterations=7, memgate_tunables=[("arena_max", "4")]), marker)
    assert (spec.iterations, spec.tunables) == (7, (("arena_max", "4"),))  # the command line beats both
    with pytest.raises(SpecError, match="unknown pipeline"):
        spec_from(_config(), {"pipeline": "nope"})


def test_memleak_judges_with_the_markers_limit() -> None:
    from stress_tests.plugin.markers import memleak
    from stress_tests.runner import finish

    n, leak = 80, 16 << 10
    rss: list[int | None] = [50 * MiB + i * leak for i in range(n)]
    leaking = finish(CellResult(CellSpec(iterations=n), "ok", series={"VmRSS": rss, "VmHWM": rss, "RssAnon": rss}))
    violation = memleak(leaking)
    assert violation is not None and "memory grows: VmRSS +16.0 KiB/iteration" in violation.message
    assert memleak(leaking, max_growth_per_iter="64 KiB") is None  # a leak, but within the stated limit
    violation = memleak(leaking, max_growth_per_iter="4 KiB")
    assert violation is not None and "(limit 4.0 KiB/iteration)" in violation.message
    memcheck = CellResult(CellSpec(pipeline="memcheck"), "ok")
    for limit in (None, "4 KiB"):  # no iterations: nothing to judge is not a pass
        violation = memleak(memcheck, max_growth_per_iter=limit)
        assert violation is not None and "no leak verdict" in violation.message


def test_memlimit_reads_the_stage_and_its_method() -> None:
    stages = [StageMemory("compile", 50 * MiB, 60 * MiB, peak=80 * MiB, peak_method="hwm"),
              StageMemory("iter1 infer", 60 * MiB, 61 * MiB, peak=62 * MiB)]
    result = CellResult(CellSpec(), "ok", stages=stages)
    violation = memlimit(result, peak="70 MiB", stage="compile")
    assert violation is not None and "peaked at 80.0 MiB, above the 70.0 MiB limit by 10.0 MiB" in violation.message
    assert "upper bound" in violation.message  # no peak reset: the figure may belong to an earlier stage
    assert memlimit(result, delta="1 MiB", stage="infer") is not None  # "infer" finds "iter1 infer": +2 MiB
    assert memlimit(result, peak="1 GiB") is None
    with pytest.raises(SpecError, match="peak= or delta="):
        memlimit(result, stage="compile")
    crashed = CellResult(CellSpec(), "crashed", reason="killed by SIGSEGV")
    violation = memlimit(crashed, peak="1 GiB")
    assert violation is not None and "did not finish (crashed)" in violation.message
    error = MemoryCheckFailed([Violation("memlimit", "cell", "too big")])
    assert isinstance(error, AssertionError) and str(error) == "memlimit: cell: too big"


def test_plugin_is_registered_through_the_entry_point(pytestconfig: pytest.Config) -> None:
    from importlib.metadata import entry_points

    [ep] = [e for e in entry_points(group="pytest11") if e.name == "memgate"]
    assert ep.value == "stress_tests.plugin"
    plugin = pytestconfig.pluginmanager.get_plugin("memgate")
    assert plugin is not None and Path(plugin.__file__).parent.name == "plugin"
