"""A test's own body as a cell: ``@pytest.mark.memleak`` without ``pipeline=``, and ``--memgate-leaks=N``.

The parent session (where the test ran once, as usual) spawns a child pytest that collects only
that test (``pytest <file>::<name> --memgate-body-job JOB``); there the plugin sets the
fixtures up once and calls the test function ``iterations`` times through the measured loop of
target cells (``stress_tests.child.loop``), under the allocator and tunables chosen, and writes
the cell's result for the parent to judge. The cell's target is ``pytest:<path>::<name>``.

A body that raises on an iteration is a failed cell naming the iteration; a fixture that fails
in the child is a failed cell with pytest's report of it.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..spec import TEST_PREFIX, CellResult, CellSpec, write_json_atomic

#: Cell fields that make a marker describe a pipeline cell; without any, the marker judges the test's body.
PIPELINE_FIELDS = frozenset({"pipeline", "model", "model_options", "mode", "runtime", "core", "threads", "graphs",
                             "inject_leak_bytes", "inject_fault", "target", "target_args", "seed"})


def body_target(item: pytest.Item) -> str:
    """``pytest:<absolute file>::<name>[params]``: what a child pytest selects, from any working folder."""
    rest = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"{TEST_PREFIX}{item.path}::{rest}"


def body_command(spec: CellSpec, python: str, job: Path, result: str) -> tuple[list[str], str | None]:
    """The child pytest's command line (the runner's hook for ``pytest:`` targets); writes the job file."""
    write_json_atomic(job, {"spec": spec.to_dict(), "result": result})
    selected = spec.target[len(TEST_PREFIX):]
    command = [python, "-m", "pytest", selected, "-q", "-p", "no:cacheprovider"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):  # the entry point is not loaded: name the plugin
        command += ["-p", "stress_tests.plugin"]
    elif importlib.util.find_spec("xdist") is not None:  # a project's "-n auto" would move the body to a worker
        command += ["-n", "0"]
    return [*command, "--memgate-body-job", str(job)], None


# ----------------------------------------------------------------------------- the child's side
def child_job(config: pytest.Config) -> dict[str, Any] | None:
    path = config.getoption("memgate_body_job", None)
    if not path:
        return None
    return dict(json.loads(Path(path).read_text(encoding="utf-8")))


def run_body(job: dict[str, Any], pyfuncitem: pytest.Function) -> None:
    """The measured loop over the test function with its fixtures' values (set up once, by pytest)."""
    from ..child.loop import TargetFailed, begin, failed, foreign_modules
    from ..journal import Journal, journal_path

    spec = CellSpec.from_dict(job["spec"])
    result_path = Path(job["result"])
    journal = Journal(journal_path(result_path))
    try:
        probe, applied, info, fields = begin(spec, journal, {"foreign_modules": foreign_modules("stress_tests")})
        result = CellResult(spec, "ok", applied=applied, probe=info)
        try:
            _loop(spec, pyfuncitem, probe, applied, fields, journal, result)
        except TargetFailed as e:
            failed(result, e)
        probe.close()
    finally:
        journal.close()
    write_json_atomic(result_path, result.to_dict())


def _loop(spec: CellSpec, pyfuncitem: pytest.Function, probe: Any, applied: Any, fields: tuple[str, ...],
          journal: Any, result: CellResult) -> None:
    from ..child.loop import TargetFailed, iterate, settler

    if not applied.verified:
        result.status, result.reason = "failed", applied.notes[0]
        return
    function: Callable[..., Any] = pyfuncitem.obj
    if inspect.iscoroutinefunction(function):
        raise TargetFailed(f"{pyfuncitem.nodeid} is an async test: its body cannot be called in a loop "
                           f"without its event loop plugin")
    names = pyfuncitem._fixtureinfo.argnames  # what pytest itself passes the test function
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    # pytest, its plugins and the fixtures live as long as the loop: out of the per-iteration
    # collection's sight (a full collection over them costs milliseconds per iteration).
    gc.collect()
    gc.freeze()
    iterate(spec, probe, fields, journal, result, lambda: function(**kwargs), settler(spec, result.probe, applied))


def not_run(job: dict[str, Any], session: pytest.Session) -> None:
    """The child ended without measuring the body (not collected, a unittest case, ...): say so as the cell."""
    spec = CellSpec.from_dict(job["spec"])
    selected = spec.target[len(TEST_PREFIX):]
    result = CellResult(spec, "failed", reason=f"the child pytest measured no test body: {session.testscollected} "
                        f"test(s) collected for {selected} (exit status {int(session.exitstatus)}); a unittest "
                        f"TestCase method cannot be looped by memgate")
    write_json_atomic(job["result"], result.to_dict())


def setup_failed(job: dict[str, Any], report: pytest.TestReport) -> None:
    """A fixture failed in the child: the cell fails with pytest's own report of it."""
    spec = CellSpec.from_dict(job["spec"])
    text = str(report.longrepr)
    last = text.strip().splitlines()[-1] if text.strip() else "no report"
    result = CellResult(spec, "failed", reason=f"the test's setup failed in the child: {last}",
                        stderr_tail="\n".join(text.splitlines()[-25:]))
    write_json_atomic(job["result"], result.to_dict())


def leak_plot(result: CellResult, out_dir: Path) -> Path | None:
    """The per-iteration plot of a body cell (series and fitted slope), for the failure message."""
    from ..report.common import CellView
    from ..report.plots import _safe, render

    slug = _safe(result.spec.id.replace("/", "__"))[:120] or "cell"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return render([CellView(result, slug)], out_dir, jobs=1).cells.get(slug)
    except Exception:  # noqa: BLE001  (a plot that cannot be drawn must not hide the verdict)
        return None
