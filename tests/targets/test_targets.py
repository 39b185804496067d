"""Target cells: the user's callable measured like a pipeline, and every way it can fail.

Each test runs real children (a fraction of a second each: the target child imports only the
standard library and the target).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from stress_tests import cli
from stress_tests.results import read_results
from stress_tests.runner import run_cell
from stress_tests.spec import CellResult, CellSpec, SpecError

pytestmark = pytest.mark.stress  # every test here runs harness children

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "targets_sample.py"
KiB = 1024


def target(name: str) -> str:
    return f"{SAMPLE}:{name}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def cells(path: Path) -> list[CellResult]:
    return read_results(path).cells


def growth(result: CellResult) -> float:
    return float(result.verdicts["RssAnon"]["slope"])


def test_a_python_list_leak_of_16k_per_call_is_a_leak_and_exits_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = run(capsys, "run", "--target", target("keeps_16k"), "--iterations", "150",
                     "--json", str(tmp_path / "r.json"))
    assert code == 1, text
    [result] = cells(tmp_path / "r.json")
    assert result.status == "leak" and result.verdict == "leak"
    assert 14 * KiB < growth(result) < 20 * KiB
    assert result.spec.id == "target/targets_sample.py:keeps_16k/glibc"
    assert "target/targets_sample.py:keeps_16k/glibc" in text


def test_a_native_malloc_leak_invisible_to_tracemalloc_is_a_leak(tmp_path: Path) -> None:
    result = run_cell(CellSpec(target=target("mallocs"), target_args=(("size", "65536"),), iterations=100,
                               tracemalloc=1), workdir=tmp_path)
    assert result.status == "leak"
    assert 60 * KiB < growth(result) < 70 * KiB
    traced = [v for v in result.series["py_traced"] if v is not None]
    assert traced[-1] - traced[len(traced) // 2] < 8 * KiB  # what tracemalloc saw: next to nothing


def test_a_clean_target_is_no_leak_and_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = run(capsys, "run", "--target", target("clean"), "--iterations", "150",
                     "--json", str(tmp_path / "r.json"))
    assert code == 0, text
    [result] = cells(tmp_path / "r.json")
    assert result.status == "ok" and result.verdict == "no-leak"
    assert [s.stage for s in result.stages] == ["import", "iter1 call"]


def test_a_class_target_is_set_up_once_called_per_iteration_and_closed(tmp_path: Path) -> None:
    spec = CellSpec(target=target("Service"), target_args=(("size", str(8 << 20)), ("label", "svc")),
                    iterations=40)
    result = run_cell(spec, workdir=tmp_path)
    assert result.status == "ok", result.reason
    stages = {s.stage: s for s in result.stages}
    assert list(stages) == ["import", "setup", "iter1 call", "close"]
    assert (stages["setup"].anon_after or 0) - (stages["setup"].anon_before or 0) > 7 << 20  # the buffer
    assert (stages["close"].anon_after or 0) - (stages["close"].anon_before or 0) < -(7 << 20)  # freed
    assert result.iterations_done == 40
    assert result.spec.id == "target/targets_sample.py:Service[size=8388608,label=svc]/glibc"


def test_target_args_arrive_as_python_literals_and_are_part_of_the_cell_key() -> None:
    from stress_tests.metrics import entry_key

    a = CellSpec(target="t.py:f", target_args=(("size", "16"),))
    b = CellSpec(target="t.py:f", target_args=(("size", "32"),))
    assert entry_key(a) != entry_key(b)
    assert entry_key(a) == "target/t.py:f[size=16]/default/python"
    result = run_cell(CellSpec(target=target("takes"), target_args=(("size", "16"), ("name", "abc")),
                               iterations=3))
    assert result.status == "ok", result.reason + result.stderr_tail


@pytest.mark.parametrize("text, message", [
    ("no_colon", "expected FILE.py:NAME"),
    ("a.py:", "expected FILE.py:NAME"),
    ("not a module:f", "neither a .py file nor a dotted module name"),
    ("m:1abc", "expected FILE.py:NAME"),
])
def test_a_malformed_target_is_a_usage_error(capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        CellSpec(target=text)
    code, out = run(capsys, "run", "--target", text)
    assert code == 2 and message in out


def test_a_missing_interpreter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "run", "--target", target("clean"), "--python", "/no/such/python3")
    assert code == 2 and "no such interpreter" in out


FAILURES = {
    "import": (f"{HERE / 'no_such_file.py'}:f", "failed", "no such file"),
    "module": ("no_such_package_memgate.mod:f", "failed", "No module named 'no_such_package_memgate'"),
    "not callable": (target("NOT_CALLABLE"), "failed", "is not callable (an object of type int)"),
    "absent name": (target("nothing_here"), "failed", "has no attribute 'nothing_here'; callables it has:"),
    "class without __call__": (target("NoCall"), "failed", "is a class without __call__"),
    "raises": (target("raises_on_fifth"), "failed", "raised on iteration 5: ValueError: the fifth call fails"),
    "exits": (target("exits"), "failed", "raised SystemExit: 3"),
    "segfault": (target("segfaults_on_third"), "crashed", "killed by SIGSEGV after 2 iteration(s)"),
    "wrong argument": (target("clean"), "failed", "cannot be called with nope"),
    "package module by path": (f"{HERE / 'relpkg' / 'relative.py'}:f", "failed",
                               "belongs to a package; name it as package.module:NAME"),
}


@pytest.fixture(scope="module")
def failure_matrix(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[CellResult], Path]:
    """One matrix over every failure kind plus a clean target last: it must go on to the end."""
    tmp = tmp_path_factory.mktemp("failures")
    syntax = tmp / "broken_syntax.py"
    syntax.write_text("def f(:\n    pass\n")
    names = [t for k, (t, _, _) in FAILURES.items() if k != "wrong argument"] + [f"{syntax}:f", target("clean")]
    out = tmp / "r.json"
    code = cli.main(["matrix", "--target", ",".join(names), "--iterations", "8", "--json", str(out)])
    wrong = run_cell(CellSpec(target=target("clean"), target_args=(("nope", "1"),), iterations=3))
    return code, [*cells(out), wrong], syntax


def test_a_report_and_baselines_take_target_cells(failure_matrix: tuple[int, list[CellResult], Path],
                                                  tmp_path: Path) -> None:
    from stress_tests import baselines
    from stress_tests.environment import fingerprint
    from stress_tests.report import write_report
    from stress_tests.results import Results

    _, results, _ = failure_matrix
    page = write_report(results, tmp_path / "report")
    assert "target/targets_sample.py:clean/glibc" in (Path(page).parent / "summary.md").read_text()
    [change] = baselines.update([Results(results, fingerprint(allocators=False))], tmp_path / "baselines")
    assert any("target/targets_sample.py:clean/default/python" in line for line in change.lines())


@pytest.mark.parametrize("kind", list(FAILURES))
def test_every_failure_kind_is_a_clear_cell_failure(
        failure_matrix: tuple[int, list[CellResult], Path], kind: str) -> None:
    _, results, _ = failure_matrix
    name, status, message = FAILURES[kind]
    [result] = [r for r in results if r.spec.target == name and (kind == "wrong argument") == bool(r.spec.target_args)]
    assert result.status == status
    assert message in result.reason
    if kind == "raises":
        assert result.iterations_done == 4  # the four calls before are kept
        assert 'targets_sample.py", line' in result.stderr_tail and "the fifth call fails" in result.stderr_tail
        assert "stress_tests" not in result.stderr_tail  # the user's frames, not the harness's
    if kind == "segfault":
        assert result.signal == "SIGSEGV" and "Segmentation fault" in result.stderr_tail
        assert "segfaults_on_third" in result.stderr_tail  # faulthandler names the user's frame


def test_a_syntax_error_names_the_file_and_line_and_the_matrix_goes_on(
        failure_matrix: tuple[int, list[CellResult], Path]) -> None:
    code, results, syntax = failure_matrix
    assert code == 1
    [broken] = [r for r in results if r.spec.target == f"{syntax}:f"]
    assert broken.status == "failed" and "SyntaxError" in broken.reason and "line 1" in broken.reason
    assert "def f(:" in broken.stderr_tail
    assert results[-2].spec.target == target("clean") and results[-2].status == "ok"  # the last matrix cell ran


def test_a_hanging_target_is_killed_at_its_timeout_with_the_samples_so_far(tmp_path: Path) -> None:
    result = run_cell(CellSpec(target=target("hangs_on_second"), iterations=5, timeout=2.0), workdir=tmp_path)
    assert result.status == "timeout" and "no result after 2 s" in result.reason
    assert result.iterations_done == 1


def test_the_child_loads_optional_helpers_and_survives_a_broken_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seam for stdlib-only helpers such as heap counters: present files load, a failing one is noted."""
    from stress_tests.child import run as child_run

    monkeypatch.setattr(child_run, "OPTIONAL_HELPERS", ("units", "no_such_helper"))
    loaded, broken = child_run.helpers()
    assert list(loaded) == ["units"] and not broken  # absent files are not helpers

    def refuse(name: str) -> None:
        raise ImportError(f"{name} needs a library this interpreter lacks")

    monkeypatch.setattr(child_run, "importlib", SimpleNamespace(import_module=refuse))
    loaded, broken = child_run.helpers()
    assert not loaded and broken == {"units": "ImportError: stress_tests.units needs a library this interpreter lacks"}


def test_hunt_on_a_target_names_the_leaking_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = run(capsys, "hunt", "--target", target("keeps_16k"), "--iterations", "60",
                     "--json", str(tmp_path / "r.json"))
    assert code == 1
    [result] = cells(tmp_path / "r.json")
    assert "targets_sample.py:" in result.hunt[0]["site"] and "16384" in result.hunt[0]["line"], result.hunt
    assert json.loads((tmp_path / "r.json").read_text())["cells"][0]["spec"]["target"] == target("keeps_16k")
