"""What every report format reads: one view per cell, the comparison rows matched to cells, file helpers.

The formats (Markdown, JUnit, plots, HTML) only lay out what this module computes, so a number
reads the same in each of them.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..atomic import write_atomic  # noqa: F401  (re-exported: the report modules write through it)
from ..spec import ANALYZED, BAD_STATUSES, CellResult
from ..units import format_size

#: The metric that decides a cell's verdict, in order of preference (as ``analysis.overall``).
DECIDING = ("RssAnon", "VmRSS")
MIB = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class CellView:
    """One cell as the report shows it."""

    result: CellResult
    slug: str  # unique within the report; names its plot files and its HTML anchor
    rows: list[dict[str, Any]] = field(default_factory=list)  # comparison rows of this cell

    @property
    def spec_id(self) -> str:
        return self.result.spec.id

    @property
    def parts(self) -> tuple[str, str, str, str, str]:
        """(pipeline, model, mode, runtime, allocator) as the cell id spells them."""
        s = self.result.spec
        if s.target:  # a target's id is target/LABEL/allocator; its LABEL may hold a "/" (a test's node id)
            return s.pipeline, s.target_label, s.mode, s.runtime, s.allocator
        p = self.spec_id.split("/")
        return p[0], p[1], p[2], p[3], p[4]

    @property
    def group(self) -> tuple[str, str, str]:
        """Cells overlaid on one chart: same pipeline, model and mode."""
        return self.parts[0], self.parts[1], self.parts[2]

    @property
    def variant(self) -> str:
        """What tells the cells of a group apart: runtime, allocator, tunables, injected leak."""
        return "/".join(self.spec_id.split("/")[3:])

    @property
    def regressions(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("verdict") == "regression"]

    @property
    def failed(self) -> bool:
        """A cell the gate fails: a bad status (leak, failure, crash, timeout) or a regression."""
        return self.result.status in BAD_STATUSES or bool(self.regressions)

    @property
    def outcome(self) -> str:
        """One word: the status, or ``regression`` for a cell that ran fine but regressed."""
        if self.result.status == "ok" and self.regressions:
            return "regression"
        return self.result.status

    def deciding(self) -> dict[str, Any] | None:
        for name in DECIDING:
            v = self.result.verdicts.get(name)
            if v and v.get("n"):
                return v
        return None

    def growth(self, metric: str | None = None) -> str:
        """``+64.0 KiB/it (+63.9 KiB..+64.1 KiB)`` for ``metric`` (the deciding one by default)."""
        v = self.result.verdicts.get(metric) if metric else self.deciding()
        return growth_text(v)

    def peak_rss(self) -> int | None:
        peaks = [x for x in self.result.series.get("VmHWM", []) if x is not None]
        peaks += [s.peak for s in self.result.stages if s.peak is not None]
        return max(peaks, default=None)

    def steady_rss(self) -> float | None:
        """Median VmRSS over the steady part (after the warm-up the analysis found)."""
        values = self.result.series.get("VmRSS", [])
        start = int((self.result.verdicts.get("VmRSS") or {}).get("warmup_end") or 0)
        steady = [x for x in values[start:] if x is not None]
        return statistics.median(steady) if steady else None

    def median_latency(self) -> float | None:
        return statistics.median(self.result.latency) if self.result.latency else None

    def why(self) -> str:
        """The reason a person reads first: the result's, else the deciding metric's."""
        if self.result.reason:
            return self.result.reason
        v = self.deciding()
        return str(v.get("reason", "")) if v else ""


def growth_text(v: Mapping[str, Any] | None) -> str:
    if not v or v.get("slope") is None:
        return "n/a"
    text = f"{format_size(v['slope'], signed=True)}/it"
    if v.get("slope_low") is not None and v.get("slope_high") is not None:
        text += f" ({format_size(v['slope_low'], signed=True)}..{format_size(v['slope_high'], signed=True)})"
    return text


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Plain-text lines of a table, columns as wide as their widest cell (terminals, logs)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, *rows]]


def latency_text(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.2f} ms"


def analyzed(result: CellResult) -> list[str]:
    """The analysed metrics this cell has a series for, in the fixed order."""
    return [m for m in ANALYZED if any(x is not None for x in result.series.get(m, []))]


def views(results: Sequence[CellResult], comparison: Any = None) -> list[CellView]:
    """A view per cell with unique slugs (a results file may hold the same cell twice) and its rows."""
    out: list[CellView] = []
    used: set[str] = set()
    for r in results:
        base = _UNSAFE.sub("_", r.spec.id.replace("/", "__")).strip("_") or "cell"
        slug, n = base, 1
        while slug in used:
            n += 1
            slug = f"{base}-{n}"
        used.add(slug)
        out.append(CellView(r, slug))
    for row in comparison_rows(comparison):
        view = _match(row, out)
        if view is not None:
            view.rows.append(row)
    return out


def comparison_rows(comparison: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in getattr(comparison, "rows", None) or []] if comparison is not None else []


def _match(row: Mapping[str, Any], cells: Iterable[CellView]) -> CellView | None:
    """The cell a comparison row belongs to: the first whose baseline name (or id) is the row's ``cell``.

    Repeats of a cell are pooled into one set of rows, and an injected leak is compared with the
    clean baseline on purpose, so several cells may fit: the first one takes the row.
    """
    cells = list(cells)
    for c in cells:
        if row.get("cell") in (baseline_name(c.result.spec), c.spec_id):
            return c
    key = tuple(str(row.get(k, "")) for k in ("pipeline", "model", "mode", "runtime", "allocator"))
    for c in cells:
        if c.parts == key and not c.result.spec.tunables:
            return c
    return None


def baseline_name(spec: Any) -> str:
    """A cell as ``stress_tests.baselines`` names it: entry key, allocator, profile unless default."""
    try:
        from ..metrics import entry_key
        from ..profiles import profile_of
    except ImportError:  # a memgate without baselines: the cell id is the only name
        return str(spec.id)
    profile = profile_of(spec.allocator, spec.tunables, spec.trim)
    return f"{entry_key(spec)}/{spec.allocator}" + ("" if profile == "default" else f"/{profile}")


def unmatched_rows(comparison: Any, cells: Sequence[CellView]) -> list[dict[str, Any]]:
    """Rows of baselines no cell of this run matched (``missing`` entries, mostly)."""
    return [r for r in comparison_rows(comparison) if _match(r, cells) is None]


# ----------------------------------------------------------------------------- comparison values
#: Stage metrics of the baselines (``stress_tests.metrics``): ``<quantity>:<stage>``.
STAGE_QUANTITIES = {"hwm_delta": "peak above the stage's start (hwm_delta)",
                    "rss_delta": "Δ RSS over the stage (rss_delta)",
                    "anon_delta": "Δ RssAnon over the stage (anon_delta)"}


def stage_metric(metric: str) -> tuple[str, str] | None:
    """``"hwm_delta:compile"`` -> ``("compile", "hwm_delta")``; None for a metric of the whole cell."""
    quantity, sep, stage = metric.partition(":")
    return (stage, quantity) if sep and quantity in STAGE_QUANTITIES else None


def is_time_metric(metric: str) -> bool:
    return any(w in metric.lower() for w in ("latency", "seconds", "time"))


def value_text(metric: str, value: Any) -> str:
    """A comparison value in its unit: milliseconds for times, sizes for the rest."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)):
        return str(value)
    if is_time_metric(metric):
        return latency_text(float(value))
    text = format_size(value)
    return text + "/it" if "growth" in metric.lower() else text


def ratio_text(ratio: Any) -> str:
    return f"{ratio:.2f}×" if isinstance(ratio, (int, float)) else ("—" if ratio is None else str(ratio))


def tolerance_text(metric: str, tol: Any) -> str:
    """A tolerance: the allowed distance from the baseline, in the metric's unit."""
    if tol is None:
        return "—"
    return "±" + value_text(metric, tol) if isinstance(tol, (int, float)) else str(tol)


def mib(value: float | None) -> float | None:
    return None if value is None else value / MIB
