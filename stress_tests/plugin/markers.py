"""The checks behind ``@pytest.mark.memleak`` and ``@pytest.mark.memlimit``: plain functions of a CellResult.

Each check takes the cell's result and its own keywords (every other marker keyword describes the
cell) and returns None (pass) or a ``Violation`` whose ``section`` is what the failure shows. Their
docstrings are the ``pytest --markers`` help. No pytest import here: the checks are usable anywhere.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..spec import ANALYZED, CellResult, SpecError
from ..units import format_size, parse_size


class MemoryCheckFailed(AssertionError):
    """A memleak or memlimit check failed; the message says which cell, what grew or peaked, and the limit."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("\n".join(v.section for v in violations))


@dataclass(frozen=True)
class Violation:
    """One failed check: its marker, the cell and the reason (``section`` is what the failure shows)."""

    marker: str
    cell: str
    message: str
    details: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return "\n".join([f"{self.marker}: {self.cell}: {self.message}", *(f"  {d}" for d in self.details)])


# ----------------------------------------------------------------------------- the markers
def memleak(result: CellResult, *, max_growth_per_iter: str | int | None = None) -> Violation | None:
    """Fail if memory grows every iteration: the harness's leak verdict, on the allocator's live heap
    and Python's blocks where counted (RSS growing over a flat heap is retention and passes), else on
    RssAnon and VmHWM; with max_growth_per_iter (a size such as "4 KiB"), only growth above it.
    Other keywords are the cell's fields (pipeline, model, mode, runtime, iterations,
    inject_leak_bytes, ...); without a pipeline field, the cell is the test's own body, run
    iterations times in an isolated child with its fixtures set up once.
    """
    unfinished = _unfinished("memleak", result)
    if unfinished is not None:
        return unfinished
    verdicts = {k: dict(v) for k, v in result.verdicts.items()}
    verdict = result.verdict
    limit = None if max_growth_per_iter is None else parse_size(max_growth_per_iter)
    # the series the runner judged (complete ones), so a re-judgement sees what the verdict saw
    series = {k: [v for v in result.series.get(k, []) if v is not None] for k in (*ANALYZED, "IterPeak")}
    series = {k: v for k, v in series.items() if v and len(v) == result.iterations_done}
    if limit is not None and series:
        from dataclasses import replace

        from ..analysis import BLOCKS_CONFIG, HEAP_CONFIG, LeakConfig, analyze_samples, overall

        # The user's limit is the practical floor: re-judge with it, so growth just above the limit
        # is a leak and a statistically certain but smaller growth is not. A pymalloc block holds at
        # most 512 bytes: the limit is at least limit/512 blocks.
        judged = analyze_samples(series, result.spec.warmup, LeakConfig(floor_bytes=float(limit)),
                                 replace(HEAP_CONFIG, floor_bytes=float(limit)),
                                 replace(BLOCKS_CONFIG, floor_bytes=max(BLOCKS_CONFIG.floor_bytes, limit / 512)))
        verdicts = {k: v.to_dict() for k, v in judged.items()}
        verdict = overall(judged)
    if verdict is None:  # no iterations (memcheck), or no analysable series: nothing was checked
        why = "; ".join(result.notes) or f"{result.iterations_done} iterations measured"
        return Violation("memleak", result.spec.id, f"no leak verdict for this cell ({why})")
    if verdict != "leak":
        return None
    rank = {k: i for i, k in enumerate(_PREFERRED)}
    grown = sorted(((k, v) for k, v in verdicts.items() if v.get("verdict") == "leak"),
                   key=lambda kv: rank.get(kv[0], len(rank)))
    growth = ", ".join(f"{k} {_per_iteration(k, v['slope'])}" for k, v in grown)
    limit_text = f" (limit {format_size(limit)}/iteration)" if limit is not None else ""
    # One line per grown series: verdict, growth and its interval, how many iterations (not a dump).
    return Violation("memleak", result.spec.id, f"memory grows: {growth}{limit_text}",
                     (_growth_line(*grown[0]),))


def memlimit(result: CellResult, *, peak: str | int | None = None, delta: str | int | None = None,
             stage: str | None = None) -> Violation | None:
    """Fail if the process's peak RSS (VmHWM) during stage (the whole run without one) is above
    peak, or the stage's peak above its start is above delta; sizes such as "300 MiB". Stages:
    create_core, read_model, compile, create_request, iter1 infer, ... (a test body's: iter1 call).
    Other keywords are the cell's fields; without a pipeline field, the cell is the test's body.
    """
    if peak is None and delta is None:
        raise SpecError("memlimit needs peak= or delta= (a size such as \"300 MiB\")")
    unfinished = _unfinished("memlimit", result)
    if unfinished is not None:
        return unfinished
    where = f"stage {stage}" if stage else "the whole run"
    if stage is None:
        measured, above_start, method = peak_of(result), None, "hwm"
    else:
        found = _stage(result, stage)
        if found is None:
            return Violation("memlimit", result.spec.id, f"no stage {stage!r} in this cell; its stages: "
                             f"{', '.join(s.stage for s in result.stages) or 'none'}")
        measured, above_start, method = found.peak, found.peak_delta, found.peak_method
    bound = " (an upper bound: the peak could not be reset here)" if stage and method == "hwm" else ""
    for name, limit, value, what in (("peak", peak, measured, "peaked at"),
                                     ("delta", delta, above_start, "rose above its start by")):
        if limit is None:
            continue
        if value is None:
            return Violation("memlimit", result.spec.id, f"{where}: no {name} measured")
        if value > parse_size(limit):
            return Violation("memlimit", result.spec.id,
                             f"{where} {what} {format_size(value)}, above the {format_size(parse_size(limit))} "
                             f"limit by {format_size(value - parse_size(limit))}{bound}")
    return None


#: The markers: name -> check. Each check's keyword parameters are its own; all other marker
#: keywords describe the cell.
MARKERS: dict[str, Callable[..., Violation | None]] = {"memleak": memleak, "memlimit": memlimit}


#: The series whose line a failure shows: what the program holds first (the allocator's live heap,
#: Python's blocks), then the process's own memory.
_PREFERRED = ("HeapLive", "PyBlocks", "RssAnon", "VmRSS", "VmHWM")


def _growth_line(metric: str, v: dict[str, Any]) -> str:
    from ..analysis import format_value

    interval = ""
    if v.get("slope_low") is not None and v.get("slope_high") is not None:
        interval = (f", interval {format_value(metric, v['slope_low'], signed=True)} to "
                    f"{format_value(metric, v['slope_high'], signed=True)}")
    p = f", p={v['p_value']:.2g}" if v.get("p_value") is not None else ""
    return (f"{metric}: verdict leak, {_per_iteration(metric, v['slope'])}{interval}{p} over "
            f"{v.get('n')} iterations after a warm-up of {v.get('warmup_end')}")


def _per_iteration(metric: str, slope: float) -> str:
    from ..analysis import format_value

    return f"{format_value(metric, slope, signed=True)}/iteration"


def _unfinished(marker: str, result: CellResult) -> Violation | None:
    if result.status in ("failed", "crashed", "timeout"):
        return Violation(marker, result.spec.id, f"the cell did not finish ({result.status}): {result.reason}",
                         tuple(result.stderr_tail.splitlines()[-10:]))
    return None


def _stage(result: CellResult, name: str) -> Any:
    """A stage by name; ``infer`` also finds the first iteration's ``iter1 infer``."""
    for s in result.stages:
        if s.stage == name:
            return s
    matches = [s for s in result.stages if s.stage.split(" ", 1)[-1] == name]
    return matches[0] if matches else None


def check_keywords(check: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(check).parameters.values() if p.kind is p.KEYWORD_ONLY}


def marker_help(name: str, check: Callable[..., Any]) -> str:
    own = [f"{p.name}={p.default!r}" for p in inspect.signature(check).parameters.values()
           if p.kind is p.KEYWORD_ONLY]
    doc = " ".join((inspect.getdoc(check) or "").split("\n\n")[0].split())  # one line: an ini "markers" entry
    return f"{name}(pipeline=..., model=..., iterations=..., {', '.join(own)}): {doc}"


def peak_of(result: CellResult) -> int | None:
    """The process's highest RSS seen: the loop's running peak and every stage's (as the report shows it)."""
    from ..report.common import CellView

    return CellView(result, "").peak_rss()
