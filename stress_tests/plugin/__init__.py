"""memgate's pytest plugin (the ``pytest11`` entry point ``memgate``): memory checks as markers.

    @pytest.mark.memleak(pipeline="reinfer", model="mlp", iterations=100, max_growth_per_iter="1 KiB")
    @pytest.mark.memlimit(peak="300 MiB", stage="compile")
    def test_u2netp(memgate_cell):          # the CellResult, if the test wants the numbers
        assert memgate_cell.status != "crashed"

A marked test runs one cell (its markers' keywords are ``CellSpec`` fields) in an isolated child
through the runner, once per distinct cell in the session, then each marker's check judges it;
a failed check raises ``MemoryCheckFailed`` with the reasons. ``memgate_cell`` gives the result of
the test's cell (also parametrizable: ``indirect=True`` with a dict of fields); ``memgate_run(**fields)``
runs any cell.

On any test, without a pipeline field, a marker judges the test's own body (``plugin.body``):

    @pytest.mark.memleak(iterations=200, max_growth_per_iter="1 KiB")
    def test_parse(big_document):            # fixtures set up once; the body runs 200 times in a child
        parse(big_document)

``pytest --memgate-leaks=200`` checks every selected test's body that way without touching its source.

Who chooses the allocator, tunables and iterations, strongest first: the command line
(``--memgate-allocator``, ``--memgate-tunable``, ``--memgate-iterations``), then the environment
(``MEMGATE_ALLOCATOR``, ``MEMGATE_TUNABLES``, as the tox factors set them), then the markers, then the
``CellSpec`` defaults. ``--memgate-baselines DIR`` compares the session's cells with the baselines
(a regression fails the session), ``--memgate-json`` and ``--memgate-report`` save them.

With pytest-benchmark, a test using both ``benchmark`` and a memgate cell gets the cell's memory
figures in ``benchmark.extra_info`` (saved with ``--benchmark-autosave``/``--benchmark-json``):
``--benchmark-compare-fail`` gates the latency while the markers gate the memory, in one run.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..spec import TEST_PREFIX, CellResult, CellSpec, SpecError, target_args_from
from ..units import format_size, parse_size
from .body import PIPELINE_FIELDS, body_target, child_job, leak_plot, not_run, run_body, setup_failed
from .markers import MARKERS, MemoryCheckFailed, Violation, check_keywords, marker_help, peak_of

__all__ = ["MARKERS", "MemoryCheckFailed", "Violation", "memgate_cell", "memgate_run", "spec_from"]


# ----------------------------------------------------------------------------- options and configuration
_PREFIX = "memgate-"
_FROM_OPTIONS = ("allocator", "tunables", "iterations", "baselines", "json")


def pytest_addoption(parser: pytest.Parser) -> None:
    from ..options import OPTIONS

    group = parser.getgroup("memgate", "memgate memory checks")
    for name in _FROM_OPTIONS:
        option = OPTIONS[name]
        kwargs = {**option.kwargs, "dest": f"memgate_{option.dest}"}
        if name in ("allocator", "iterations"):  # None = not given, so markers and the environment may decide
            kwargs["default"] = None
        if name == "baselines":  # here there is no default folder: comparing is asked for
            kwargs["help"] = "compare the session's cells with the baseline files in DIR; a regression fails"
        if name == "json":
            kwargs["help"] = "write the session's cells as a results file (memgate report/compare read it)"
        dataclasses.replace(option, kwargs=kwargs).add_to(group, prefix=_PREFIX)
    group.addoption("--memgate-report", default=None, metavar="DIR",
                    help="write the report of the session's cells (summary.md, junit.xml, plots, index.html)")
    group.addoption("--memgate-leaks", type=int, default=0, metavar="N",
                    help="check every selected test for leaks: its body run N times in an isolated child, as "
                         "@pytest.mark.memleak(iterations=N) would")
    group.addoption("--memgate-body-job", default=None, metavar="JOB.json",
                    help="(internal) this session is the child that measures one test's body")


def pytest_configure(config: pytest.Config) -> None:
    for name, check in MARKERS.items():
        config.addinivalue_line("markers", marker_help(name, check))
    config.stash[_STATE] = _State()


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and state.workdir is not None:
        import shutil

        shutil.rmtree(state.workdir, ignore_errors=True)


@dataclass
class _State:
    """What a session ran: results by spec (a cell runs once), and per test its cell and violations."""

    workdir: str | None = None
    by_spec: dict[CellSpec, CellResult] = dataclasses.field(default_factory=dict)
    # (test, cell id) -> (result, failed checks, passed checks), in the order the tests ran
    records: dict[tuple[str, str], tuple[CellResult, list[Violation], list[str]]] = dataclasses.field(
        default_factory=dict)
    comparison: Any = None
    notes: list[str] = dataclasses.field(default_factory=list)
    plots: str | None = None  # where failed body cells' plots go when no report folder was asked for


_STATE = pytest.StashKey[_State]()
_CELL = pytest.StashKey[CellResult]()
_SPEC_FIELDS = {f.name for f in dataclasses.fields(CellSpec)}


def spec_from(config: pytest.Config, fields: Mapping[str, Any]) -> CellSpec:
    """The cell of ``fields`` (marker keywords) under the session's choices (see the module docstring)."""
    import os

    unknown = sorted(set(fields) - _SPEC_FIELDS)
    if unknown:
        raise SpecError(f"unknown cell field(s) {unknown}; known: {sorted(_SPEC_FIELDS)}")
    values = dict(fields)
    for key in ("tunables", "model_options"):
        if isinstance(values.get(key), Mapping):
            values[key] = tuple((str(k), str(v)) for k, v in values[key].items())
        elif key in values:
            values[key] = tuple(tuple(kv) for kv in values[key])
    if "target_args" in values:  # a dict of Python values in a marker, as --target-arg text
        values["target_args"] = target_args_from(values["target_args"])
    if "inject_leak_bytes" in values:
        values["inject_leak_bytes"] = parse_size(values["inject_leak_bytes"])
    env_allocator, env_tunables = (os.environ.get(n, "").strip() for n in ("MEMGATE_ALLOCATOR", "MEMGATE_TUNABLES"))
    allocator = config.getoption("memgate_allocator") or env_allocator or values.get("allocator")
    if allocator:
        values["allocator"] = allocator
    if env_tunables:  # a profile name is spelled per allocator, so it is read for the one chosen above
        from ..profiles import parse_profile

        values["tunables"], values["trim"] = parse_profile(env_tunables, values.get("allocator", "glibc"))
    if config.getoption("memgate_tunables"):
        values["tunables"] = tuple(config.getoption("memgate_tunables"))
    if config.getoption("memgate_iterations"):
        values["iterations"] = config.getoption("memgate_iterations")
    spec = CellSpec(**values)
    from ..options import check

    check(spec)
    return spec


def run(config: pytest.Config, spec: CellSpec, nodeid: str) -> CellResult:
    """Run ``spec`` in an isolated child (once per session: the same cell asked twice is measured once)."""
    import tempfile

    from ..runner import run_cells

    state = config.stash[_STATE]
    if spec not in state.by_spec:
        if state.workdir is None:
            state.workdir = tempfile.mkdtemp(prefix="memgate-pytest-")
        from pathlib import Path

        # A test that names an allocator needs it: a missing one fails the test, never skips it.
        [state.by_spec[spec]] = run_cells([spec], workdir=Path(state.workdir), require_allocators=True)
    result = state.by_spec[spec]
    state.records.setdefault((nodeid, spec.id), (result, [], []))  # shown even if the test fails before its checks
    return result


def _marker_fields(item: pytest.Item, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cell fields of the item's markers (check keywords left out); the same field twice must agree."""
    fields: dict[str, Any] = dict(extra or {})
    for name, check in MARKERS.items():
        own = check_keywords(check)
        for mark in item.iter_markers(name):
            if mark.args:
                raise SpecError(f"@pytest.mark.{name} takes keywords only, got {mark.args!r}")
            for key, value in mark.kwargs.items():
                if key in own:
                    continue
                if key in fields and fields[key] != value:
                    raise SpecError(f"the cell's {key} is {fields[key]!r} in one marker and {value!r} in another")
                fields[key] = value
    return fields


T = TypeVar("T")


def _or_fail(make: Callable[[], T], what: str = "memgate") -> T:
    """``make()``, or fail the test with the message of a usage error (spec, allocator, model, size)."""
    try:
        return make()
    except ValueError as e:  # SpecError, AllocatorError, ModelError, ProfileError, a bad size
        message = f"{what}: {e}"
    pytest.fail(message, pytrace=False)  # outside the except: no "during handling" chain in the output


def _cell_of(item: pytest.Item, extra: Mapping[str, Any] | None = None, body: bool = False) -> CellResult:
    """The item's cell: a pipeline's (its markers name one, or the memgate_cell fixture asks), else its body's."""
    if _CELL not in item.stash:
        fields = _or_fail(lambda: _marker_fields(item, extra))
        if body or (extra is None and "memgate_cell" not in getattr(item, "fixturenames", ())
                    and not PIPELINE_FIELDS & set(fields)):
            fields["target"] = body_target(item)
        spec = _or_fail(lambda: spec_from(item.config, fields))
        result = run(item.config, spec, item.nodeid)
        if result.status == "skipped":  # the runtime cannot run what the markers ask for
            pytest.fail(f"memgate: {result.spec.id}: {result.reason}", pytrace=False)
        item.stash[_CELL] = result
    return item.stash[_CELL]


# ----------------------------------------------------------------------------- fixtures and hooks
@pytest.fixture
def memgate_cell(request: pytest.FixtureRequest) -> CellResult:
    """The CellResult of this test's cell: its memleak/memlimit keywords, or ``indirect`` parameters (a dict)."""
    param = getattr(request, "param", None)
    if param is not None and not isinstance(param, Mapping):
        pytest.fail(f"memgate_cell parameters are dicts of cell fields, got {param!r}", pytrace=False)
    return _cell_of(request.node, param)


@pytest.fixture
def memgate_run(request: pytest.FixtureRequest) -> Callable[..., CellResult]:
    """``memgate_run(pipeline="recompile", model="mlp", iterations=50)``: run any cell, return its CellResult."""
    def run_fields(**fields: Any) -> CellResult:
        return run(request.config, _or_fail(lambda: spec_from(request.config, fields)), request.node.nodeid)

    return run_fields


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """In the child of a body cell: the test function, called ``iterations`` times and measured."""
    job = child_job(pyfuncitem.config)
    if job is None:
        return None
    run_body(job, pyfuncitem)
    return True


def _leaks_mark(item: pytest.Item) -> list[tuple[str, Mapping[str, Any]]]:
    """``--memgate-leaks=N``: a body memleak check for a test that has no memgate marker or fixture of its own."""
    n = item.config.getoption("memgate_leaks", 0)
    uses_ours = {"memgate_cell", "memgate_run"} & set(getattr(item, "fixturenames", ()))
    # a plain test function only: unittest cases run through their TestCase, async ones through their loop
    plain = type(item) is pytest.Function and not inspect.iscoroutinefunction(getattr(item, "obj", None))
    if n and plain and not uses_ours:
        return [("memleak", {"iterations": n})]
    return []


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After the test body passed (this runs after pytest's own call hook): the markers' checks."""
    if child_job(item.config) is not None:  # the child measuring a body: the parent judges
        return
    marks = [(name, mark.kwargs) for name in MARKERS for mark in item.iter_markers(name)]
    body = False
    if not marks and _CELL not in item.stash:
        marks = _leaks_mark(item)
        body = bool(marks)
        if not marks:
            return
    result = _cell_of(item, dict(marks[0][1]) if body else None, body=body)
    violations, passed = [], []
    for name, kwargs in marks:
        own = {k: v for k, v in kwargs.items() if k in check_keywords(MARKERS[name])}
        violation = _or_fail(functools.partial(MARKERS[name], result, **own), f"memgate: @pytest.mark.{name}")
        if violation is None:
            passed.append(name)
        else:
            violations.append(violation)
    if violations and result.spec.target.startswith(TEST_PREFIX):
        plot = leak_plot(result, _plots_dir(item.config))
        if plot is not None:
            violations = [dataclasses.replace(v, details=(*v.details, f"plot: {plot}")) for v in violations]
    item.config.stash[_STATE].records[(item.nodeid, result.spec.id)] = (result, violations, passed)
    item.add_report_section("call", "memgate", _figures(result))
    benchmark = getattr(item, "funcargs", {}).get("benchmark")
    if benchmark is not None and hasattr(benchmark, "extra_info"):
        benchmark.extra_info.update(extra_info(result))
    if violations:
        raise MemoryCheckFailed(violations)


def _plots_dir(config: pytest.Config) -> Path:
    """Where a failed body cell's plot goes: the --memgate-report folder, else a session folder kept after it."""
    report = config.getoption("memgate_report")
    state = config.stash[_STATE]
    if report:
        return Path(report) / "plots"
    if state.plots is None:
        import tempfile

        state.plots = tempfile.mkdtemp(prefix="memgate-plots-")
    return Path(state.plots)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    job = child_job(item.config)
    if job is not None and call.when == "setup" and call.excinfo is not None:
        setup_failed(job, outcome.get_result())
    if call.excinfo is not None and call.excinfo.errisinstance(MemoryCheckFailed):
        # The reasons, not the plugin's frames: the test's code did nothing wrong a traceback could show.
        outcome.get_result().longrepr = f"MemoryCheckFailed: {call.excinfo.value}"


def extra_info(result: CellResult) -> dict[str, Any]:
    """Memory figures for pytest-benchmark's ``extra_info`` (bytes; growth in bytes per iteration)."""
    deciding = result.verdicts.get("RssAnon") or result.verdicts.get("VmRSS") or {}
    return {"memgate_cell": result.spec.id, "memgate_status": result.status, "memgate_verdict": result.verdict,
            "memgate_growth_per_iter": deciding.get("slope"), "memgate_peak_rss": peak_of(result),
            "memgate_stage_peaks": {s.stage: s.peak_delta for s in result.stages}}


def _figures(result: CellResult) -> str:
    from ..report.common import CellView
    from ..report.junit import details

    return details(CellView(result, ""))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Compare with the baselines, save results and report; a regression fails the session."""
    config = session.config
    job = child_job(config)
    if job is not None:  # the child of a body cell: its result file is its outcome, whatever pytest counted
        if not Path(job["result"]).exists():
            not_run(job, session)
        session.exitstatus = pytest.ExitCode.OK
        return
    state = config.stash.get(_STATE, None)
    if state is None or not state.by_spec:
        return
    results = list(state.by_spec.values())
    baselines = config.getoption("memgate_baselines")
    if baselines:
        from ..baselines import BaselineError, compare

        try:
            state.comparison = compare(results, baselines)
        except BaselineError as e:
            state.notes.append(f"baselines not compared: {e}")
        if state.comparison is not None and state.comparison.regressions() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if config.getoption("memgate_json"):
        from ..environment import fingerprint
        from ..results import write_results

        path = write_results(config.getoption("memgate_json"), results, fingerprint(), ["pytest", *config.args])
        state.notes.append(f"results written to {path}")
    if config.getoption("memgate_report"):
        from ..report import write_report

        state.notes.append(f"report: {write_report(results, config.getoption('memgate_report'), state.comparison)}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per test with a memgate cell, then the comparison with the baselines if asked."""
    state = config.stash.get(_STATE, None)
    if state is None or not state.records:
        return
    tr = terminalreporter
    tr.write_sep("=", f"memgate: memory of {len(state.by_spec)} cell(s)")
    from ..report.common import growth_text, text_table, tolerance_text, value_text

    rows, red = [], []
    for (nodeid, _), (result, violations, passed) in state.records.items():
        verdict = result.verdicts.get("RssAnon") or result.verdicts.get("VmRSS")
        checks = " ".join([*(f"{n} ok" for n in passed), *(f"{v.marker} FAILED" for v in violations)]) or "-"
        rows.append([nodeid, result.spec.id, result.verdict or result.status, growth_text(verdict).split(" (")[0],
                     format_size(peak_of(result)), checks])
        red.append(bool(violations))
    lines = text_table(["test", "cell", "verdict", "growth", "peak RSS", "checks"], rows, right=(3, 4))
    for i, line in enumerate(lines):
        tr.write_line(line, red=i > 0 and red[i - 1])
    comparison = state.comparison
    if comparison is not None:
        counts = ", ".join(f"{n} {k}" for k, n in comparison.counts().items() if n)
        tr.write_line(f"baselines {comparison.env_key}: {counts or 'nothing compared'}")
        for row in comparison.regressions():
            m = str(row["metric"])
            tr.write_line(f"regression: {row['cell']} {m}: {value_text(m, row['current'])} vs baseline "
                          f"{value_text(m, row['baseline'])} (tolerance {tolerance_text(m, row['tolerance'])})",
                          red=True)
    for note in state.notes:
        tr.write_line(note)
