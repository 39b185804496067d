"""The markers on a test's own body, and ``--memgate-leaks``, through pytester.

Each body cell is a child pytest (a few seconds each on a loaded machine: pytest and the project's
plugins start again), so the files below share cells where they can.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.backends.backend_agg  # noqa: F401
import matplotlib.figure  # noqa: F401
import PIL.Image  # noqa: F401
import pytest

import stress_tests.analysis  # noqa: F401
import stress_tests.report  # noqa: F401

pytestmark = pytest.mark.stress  # every test here runs harness children

pytest_plugins = ["pytester"]
# The inner sessions run in this process and pytester forgets what they imported: C extensions
# (scipy's, matplotlib's) cannot load twice, so what the plugin reaches for is imported once, above.


def test_a_marked_test_keeping_64k_per_call_fails_naming_verdict_growth_interval_and_plot(
        pytester: pytest.Pytester) -> None:
    """The false green of the first thing a user tries: the marker used to judge reinfer/mlp instead."""
    pytester.makepyfile(test_body="""
        import pytest

        KEPT = []

        @pytest.fixture
        def counted(tmp_path_factory):
            with open("setups.txt", "a") as f:  # one line per fixture setup, parent and child
                f.write("setup\\n")
            return []

        @pytest.mark.memleak(iterations=80)
        def test_keeps_64k():
            KEPT.append(b"x" * 65536)

        @pytest.mark.memleak(iterations=80, max_growth_per_iter="1 KiB")
        def test_clean(counted):
            data = b"y" * 65536
            counted.append(len(data))
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "MemoryCheckFailed: memleak: target/pytest:test_body.py::test_keeps_64k/glibc: memory grows: "
        "*RssAnon +64.0 KiB/iteration",
        "  RssAnon: verdict leak, +6?.? KiB/iteration, interval +6?.? KiB to +6?.? KiB, p=* over * iterations*",
        "  plot: */cell-target__pytest_*test_keeps_64k__glibc.png",
    ])
    result.stdout.no_fnmatch_line("*reinfer/mlp*")
    plot = next(line.split("plot: ", 1)[1] for line in result.stdout.lines if line.startswith("  plot: "))
    assert Path(plot).stat().st_size > 1000
    # the clean test's fixture: set up once in the parent's run and once in the child, not once per iteration
    assert (pytester.path / "setups.txt").read_text().count("setup") == 2


def test_memlimit_on_a_body_judges_the_bodys_peak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.memlimit(peak="1 MiB", iterations=10)
        def test_too_tight():
            b"x" * (8 << 20)

        @pytest.mark.memlimit(peak="64 GiB", stage="iter1 call", delta="1 GiB", iterations=10)
        def test_generous():
            b"x" * (8 << 20)
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*memlimit: target/pytest:*::test_too_tight/glibc: the whole run peaked at * MiB, "
                                 "above the 1.0 MiB limit by *"])


def test_memgate_leaks_checks_every_test_and_a_failing_body_is_a_clear_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import os
        import sys
        import unittest

        import pytest

        KEPT = []
        CALLS = [0]

        def test_unmarked_leak():
            KEPT.append(b"z" * 32768)

        def test_unmarked_clean():
            if "--memgate-body-job" in sys.argv:  # in the child: the allocator's tunables were applied
                assert "glibc.malloc.arena_max=1" in os.environ.get("GLIBC_TUNABLES", "")

        def test_fails_on_fifth_call():
            CALLS[0] += 1
            if CALLS[0] == 5 and "--memgate-body-job" in sys.argv:  # the child's fifth call
                raise ValueError("the fifth call fails")

        @pytest.fixture
        def broken_in_child():
            if "--memgate-body-job" in sys.argv:
                raise RuntimeError("no database in the child")

        def test_fixture_breaks(broken_in_child):
            pass

        class Case(unittest.TestCase):  # unittest methods run through their TestCase: --memgate-leaks leaves them
            def test_unittest(self):
                KEPT.append(b"u" * 32768)

        @pytest.mark.memleak(iterations=10)
        class MarkedCase(unittest.TestCase):  # marked explicitly: a clear failure, not a false green
            def test_marked_unittest(self):
                pass
    """)
    result = pytester.runpytest("--memgate-leaks=80", "--memgate-tunable", "arena_max=1")
    result.assert_outcomes(passed=2, failed=4)
    result.stdout.fnmatch_lines([
        "*::test_unmarked_leak/glibc/arena_max=1: memory grows: *RssAnon +32.0 KiB/iteration*",
    ])
    result.stdout.fnmatch_lines(["*::test_fails_on_fifth_call/glibc/arena_max=1: the cell did not finish (failed): "
                                 "raised on iteration 5: ValueError: the fifth call fails"])
    result.stdout.fnmatch_lines(["*::test_fixture_breaks/glibc/arena_max=1: the cell did not finish (failed): "
                                 "the test's setup failed in the child: *RuntimeError*"])
    result.stdout.fnmatch_lines(["*::MarkedCase::test_marked_unittest/glibc/arena_max=1: the cell did not finish "
                                 "(failed): the child pytest measured no test body*"])
    result.stdout.fnmatch_lines(["*::test_unmarked_clean *no-leak*memleak ok"])
    result.stdout.no_fnmatch_line("*::Case::test_unittest *")


def test_a_marker_can_name_a_target_and_its_args(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(service="""
        KEPT = []

        def keep(size):
            KEPT.append(b"k" * size)
    """)
    pytester.makepyfile(test_target="""
        import pytest

        @pytest.mark.memleak(target="service.py:keep", target_args={"size": 32768}, iterations=100)
        def test_service_keeps_nothing():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*memleak: target/service.py:keep?size=32768?/glibc: memory grows: "
                                 "*RssAnon +32.0 KiB/iteration*"])


def test_target_args_from_python_values_reads_back_as_the_same_values() -> None:
    import ast

    from stress_tests.spec import target_args_from

    values = {"size": 16, "name": "lru", "tag": "16", "sizes": [1, 2], "flag": True}
    pairs = target_args_from(values)
    assert dict(pairs) == {"size": "16", "name": "lru", "tag": "'16'", "sizes": "[1, 2]", "flag": "True"}

    def back(text: str) -> object:  # what the child does with each value
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    assert {k: back(v) for k, v in pairs} == values


def test_the_child_pytest_selects_one_test_and_keeps_it_in_its_own_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stress_tests.plugin import body
    from stress_tests.spec import CellSpec

    spec = CellSpec(target="pytest:/p/test_x.py::test_y[1]", iterations=5)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    real = body.importlib.util.find_spec
    monkeypatch.setattr(body.importlib.util, "find_spec", lambda name: object() if name == "xdist" else real(name))
    command, cwd = body.body_command(spec, "/py", tmp_path / "job.json", str(tmp_path / "r.json"))
    assert command[:4] == ["/py", "-m", "pytest", "/p/test_x.py::test_y[1]"] and cwd is None
    assert command[command.index("-n") + 1] == "0"  # a project's "-n auto" would move the body to a worker
    assert command[-2:] == ["--memgate-body-job", str(tmp_path / "job.json")]
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    command, _ = body.body_command(spec, "/py", tmp_path / "job.json", str(tmp_path / "r.json"))
    assert "stress_tests.plugin" in command and "-n" not in command
