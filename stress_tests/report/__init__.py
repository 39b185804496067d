"""Reports of a run: ``summary.md``, ``junit.xml``, PNG plots and a self-contained ``index.html``.

``write_report(results, out_dir, comparison=None)`` writes, with fixed names so CI can point at them::

    out_dir/summary.md        Markdown for $GITHUB_STEP_SUMMARY: regressions first, then every cell
    out_dir/junit.xml         one test case per cell; leaks and regressions fail, crashes error
    out_dir/index.html        everything on one page, plots embedded
    out_dir/plots/cell-<cell>.png     VmRSS, VmHWM, RssAnon per iteration, warm-up and fitted slope
                                      (one per cell: its other runs under --repeat drawn faint)
    out_dir/plots/group-<pipeline>__<model>__<mode>.png   the same, every allocator overlaid
    out_dir/plots/stages-<cell>.png   memory per stage (against the baseline when compared)

``<cell>`` is the cell id with ``/`` as ``__``. Each file is written atomically (temporary file,
then rename); plots a previous report left for cells no longer present are removed.
``comparison`` is ``stress_tests.baselines``' comparison (``rows``, ``env_key``) or None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results import Results, read_results
from ..spec import CellResult
from .common import views, write_atomic

__all__ = ["write_report", "report_from_file", "SUMMARY", "JUNIT", "INDEX", "PLOTS"]

SUMMARY, JUNIT, INDEX, PLOTS = "summary.md", "junit.xml", "index.html", "plots"
_OURS = re.compile(r"^\.?(cell|group|stages)-.*\.png(\..*\.tmp)?$")


def write_report(results: Results | Sequence[CellResult], out_dir: str | Path, comparison: Any = None) -> Path:
    """Write the report into ``out_dir`` and return the HTML page's path.

    ``results`` is a read results file or the cells of a run that just finished (then the
    fingerprint is this machine's).
    """
    from .html import html_page
    from .junit import junit_xml
    from .markdown import summary_markdown
    from .plots import render

    if isinstance(results, Results):
        cells, fingerprint = list(results.cells), dict(results.fingerprint)
        meta: dict[str, Any] = {"created": results.created, "memgate": results.memgate, "command": results.command}
    else:
        from ..environment import fingerprint as this_machine

        cells, fingerprint, meta = list(results), this_machine(allocators=False), {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shown = views(cells, comparison)
    plots = render(shown, out / PLOTS)
    _remove_stale(out / PLOTS, {p.name for p in plots.all()})
    env_key = getattr(comparison, "env_key", None) if comparison is not None else None
    write_atomic(out / SUMMARY, summary_markdown(shown, fingerprint, comparison, meta))
    write_atomic(out / JUNIT, junit_xml(shown, fingerprint, str(meta.get("created") or ""), env_key))
    return write_atomic(out / INDEX, html_page(shown, plots, fingerprint, comparison, meta))


def _remove_stale(plots_dir: Path, keep: set[str]) -> None:
    """Plots of cells this report does not have: a reused folder must not show another run's cells."""
    if not plots_dir.is_dir():
        return
    for path in plots_dir.iterdir():
        if _OURS.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)


def report_from_file(results_path: str | Path | Sequence[str | Path], out_dir: str | Path,
                     baselines: str | Path | None = None) -> tuple[Path, list[str]]:
    """``memgate report``: read a results file (or several: shards, combined), compare when asked
    and possible, write; (page, notes).

    Raises ``ResultsError`` for an unreadable results file.
    """
    from ..results import combine

    paths = [results_path] if isinstance(results_path, (str, Path)) else list(results_path)
    results, notes = combine([read_results(p) for p in paths])
    comparison = None
    if baselines is not None:
        comparison, note = _compare(results, Path(baselines))
        if note:
            notes.append(note)
    return write_report(results, out_dir, comparison), notes


def _compare(results: Results, baselines: Path) -> tuple[Any, str]:
    try:
        from .. import baselines as module
    except ImportError:
        return None, "baselines comparison is not available in this memgate: the report shows verdicts only"
    compare = getattr(module, "compare", None)
    if compare is None:
        return None, "stress_tests.baselines has no compare(): the report shows verdicts only"
    return compare(results, baselines), ""
