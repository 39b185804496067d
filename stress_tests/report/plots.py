"""PNG plots with matplotlib's Agg canvas (no pyplot, no display, no global state).

- ``cell-<slug>.png``: VmRSS, VmHWM, RssAnon, HeapLive and PyBlocks per iteration of one cell, one panel each, with the
  warm-up shaded and the Theil-Sen line fitted over the steady part;
- ``group-<slug>.png``: the same three panels with every cell of a (pipeline, model, mode) overlaid
  (allocators, tunables, runtimes), drawn only when the group has more than one cell;
- ``stages-<slug>.png``: memory per stage as bars, against the baseline when the comparison has
  stage metrics for the cell.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..units import COUNTED, format_size
from .common import MIB, STAGE_QUANTITIES, CellView, analyzed, growth_text, stage_metric, write_atomic

_TITLES = {"VmRSS": "VmRSS (resident)", "VmHWM": "VmHWM (peak so far)", "RssAnon": "RssAnon (anonymous pages)",
           "HeapLive": "HeapLive (the allocator's live bytes)", "PyBlocks": "PyBlocks (pymalloc blocks in use)"}
_VERDICT_COLOURS = {"leak": "#c62828", "no-leak": "#2e7d32", "inconclusive": "#b26a00", "retention": "#6a1b9a"}
_FIT = "#d84315"
_DPI = 100


@dataclass
class Plots:
    """The PNG files written, by cell slug and by group."""

    cells: dict[str, Path] = field(default_factory=dict)
    stages: dict[str, Path] = field(default_factory=dict)
    groups: dict[tuple[str, str, str], Path] = field(default_factory=dict)

    def all(self) -> list[Path]:
        return [*self.cells.values(), *self.stages.values(), *self.groups.values()]


def render(cells: Sequence[CellView], out_dir: Path, jobs: int | None = None) -> Plots:
    """Write every plot into ``out_dir`` (deterministic names) and return their paths.

    Repeats of a cell (``memgate check --repeat N``) share one per-iteration plot, the first run drawn
    over the others, and only the first run, which holds the comparison rows, gets a stage plot; the
    allocator overlays show each cell's first run. A figure takes a few tenths of a second to draw, so
    they are drawn in forked workers (``jobs``, default: the CPUs) when there are enough to pay off.
    """
    plots = Plots()
    tasks: list[tuple[Callable[..., Any], tuple[Any, ...], Path]] = []
    runs_of: dict[str, list[CellView]] = {}
    for c in cells:
        runs_of.setdefault(c.spec_id, []).append(c)
    firsts: list[CellView] = []
    for runs in runs_of.values():
        drawn = [c for c in runs if analyzed(c.result)]
        if drawn:
            path = out_dir / f"cell-{drawn[0].slug}.png"
            plots.cells.update((c.slug, path) for c in drawn)
            tasks.append((_cell_figure, (drawn[0], drawn[1:]), path))
            firsts.append(drawn[0])
        bars = stage_bars(runs[0])
        if bars:
            plots.stages[runs[0].slug] = out_dir / f"stages-{runs[0].slug}.png"
            tasks.append((_stage_figure, (runs[0], bars), plots.stages[runs[0].slug]))
    groups: dict[tuple[str, str, str], list[CellView]] = {}
    for c in firsts:
        groups.setdefault(c.group, []).append(c)
    for key, members in groups.items():
        if len(members) > 1:
            plots.groups[key] = out_dir / f"group-{_safe('__'.join(key))}.png"
            tasks.append((_group_figure, (key, members), plots.groups[key]))
    _run(tasks, jobs)
    return plots


def _draw(make: Callable[..., Any], args: tuple[Any, ...], path: Path) -> Path:
    return _save(make(*args), path)


def _run(tasks: Sequence[tuple[Callable[..., Any], tuple[Any, ...], Path]], jobs: int | None) -> None:
    import multiprocessing
    import os
    import threading

    workers = min(jobs or os.cpu_count() or 1, 8, len(tasks) // 4)
    # fork only: spawned workers would re-import the harness (seconds); and never with other threads
    # alive, whose locks a forked child would inherit held.
    if workers < 2 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        for make, args, path in tasks:
            _draw(make, args, path)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for future in [pool.submit(_draw, *task) for task in tasks]:
            future.result()  # a worker's exception is raised here, in the caller


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _save(fig: Any, path: Path) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    # A plot has few colours: a 256-colour palette cuts the file (and the HTML page) to about a third.
    # No metadata is written, so the same results give the same bytes.
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return write_atomic(path, out.getvalue())


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


MIN_SPAN = 1.0  # MiB: a y axis never spans less, so one page (4 KiB) of noise does not look like a cliff


def _mib_axis(ax: Any, metric: str = "") -> None:
    """MiB without an offset or scientific notation: ``50.4``, never ``+5.04e1`` or ``1e-6 + 50.39``."""
    from matplotlib.ticker import ScalarFormatter

    low, high = ax.get_ylim()
    span = MIN_SPAN if metric not in COUNTED else 20.0  # blocks: a handful is not a cliff either
    if high - low < span:
        middle = (low + high) / 2
        ax.set_ylim(middle - span / 2, middle + span / 2)

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)
    ax.set_ylabel("blocks" if metric in COUNTED else "MiB")
    ax.grid(True, alpha=0.3)


def _scale(metric: str) -> float:
    return 1.0 if metric in COUNTED else float(MIB)


def _series_mib(values: Sequence[int | None], metric: str = "") -> list[float]:
    scale = _scale(metric)
    return [math.nan if v is None else v / scale for v in values]


def fit_line(values: Sequence[int | None], verdict: Mapping[str, Any]) -> tuple[list[int], list[float]] | None:
    """The Theil-Sen line over the steady part, in MiB: the verdict's slope, the median intercept.

    The analysis keeps the slope, not the intercept; ``median(y) - slope * median(x)`` is the one
    Sen's estimator pairs with it (as scipy's ``theilslopes``), so the line sits on the data.
    """
    import statistics

    slope = verdict.get("slope")
    start = int(verdict.get("warmup_end") or 0)
    xs = [i for i in range(start, len(values)) if values[i] is not None]
    if slope is None or len(xs) < 2:
        return None
    ys = [float(values[i]) for i in xs]  # type: ignore[arg-type]
    intercept = statistics.median(ys) - slope * statistics.median(xs)
    ends = [xs[0], xs[-1]]
    scale = _scale(str(verdict.get("metric", "")))
    return ends, [(intercept + slope * x) / scale for x in ends]


def _cell_figure(c: CellView, repeats: Sequence[CellView] = ()) -> Any:
    """The cell's series per iteration with its verdicts; ``repeats`` (other runs of it) drawn faint behind."""
    r = c.result
    metrics = analyzed(r)
    fig = _figure(9, 2.3 * len(metrics) + 0.8)
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    verdict = f"verdict {r.verdict}" if r.verdict else f"status {r.status}"
    runs = f"; run 1 of {len(repeats) + 1}, the others faint" if repeats else ""
    fig.suptitle(f"{c.spec_id}\n{verdict}, {c.result.iterations_done} iterations{runs}", fontsize=11)
    for ax, metric in zip(axes, metrics):
        values = r.series[metric]
        xs = list(range(len(values)))
        v = r.verdicts.get(metric) or {}
        for i, other in enumerate(repeats):
            series = other.result.series.get(metric) or []
            ax.plot(range(len(series)), _series_mib(series, metric), color="#90a4ae", lw=0.9, alpha=0.6,
                    label=f"runs 2-{len(repeats) + 1}" if i == 0 else None)
        ax.plot(xs, _series_mib(values, metric), color="#1565c0", lw=1.4, marker="." if len(xs) <= 80 else None,
                ms=4, label="measured (after each iteration)")
        if metric == "VmHWM" and any(x is not None for x in r.series.get("IterPeak", [])):
            # On top: where it equals the running peak (a leak) it must still be seen.
            ax.plot(xs, _series_mib(r.series["IterPeak"][: len(xs)]), color="#7e57c2", lw=1.2, ls=":", zorder=3,
                    label="peak within each iteration")
        w = v.get("warmup_end")
        if w:
            span = "iteration 0" if w == 1 else f"iterations 0-{w - 1}"
            ax.axvspan(-0.5, w - 0.5, color="#9e9e9e", alpha=0.18, lw=0, label=f"warm-up ({span}, not judged)")
            ax.axvline(w - 0.5, color="#616161", ls="--", lw=1)
        line = fit_line(values, v) if v else None
        if line is not None:
            ax.plot(*line, color=_FIT, lw=2, ls="--", label=f"Theil-Sen fit {growth_text(v).split(' (')[0]}")
        word = v.get("verdict", "no verdict")
        ax.set_title(f"{_TITLES.get(metric, metric)}: {word}, {growth_text(v)}", loc="left", fontsize=10,
                     color=_VERDICT_COLOURS.get(word, "black"))
        _mib_axis(ax, metric)
        ax.legend(loc="best", fontsize=8, framealpha=0.85)
    axes[-1].set_xlabel("iteration")
    return fig


def _group_figure(key: tuple[str, str, str], members: Sequence[CellView]) -> Any:
    metrics = [m for m in ("HeapLive", "VmRSS", "VmHWM", "RssAnon") if any(m in analyzed(c.result) for c in members)]
    fig = _figure(9, 2.3 * len(metrics) + 1.4)
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(f"{' / '.join(key)}: {len(members)} cells overlaid\n"
                 f"dashed: Theil-Sen fit over the steady part; dotted: where each warm-up ends", fontsize=11)
    colours = [f"C{i % 10}" for i in range(len(members))]
    names = short_names(members)
    for ax, metric in zip(axes, metrics):
        for colour, c in zip(colours, members):
            values = c.result.series.get(metric) or []
            if not values:
                continue
            v = c.result.verdicts.get(metric) or {}
            label = f"{names[c.slug]}: {v.get('verdict', c.result.status)} {growth_text(v).split(' (')[0]}"
            ax.plot(range(len(values)), _series_mib(values, metric), color=colour, lw=1.3, label=label)
            w = v.get("warmup_end")
            if w:
                ax.axvline(w - 0.5, color=colour, ls=":", lw=1.2)
            line = fit_line(values, v) if v else None
            if line is not None:
                ax.plot(*line, color=colour, lw=2.2, ls="--", alpha=0.9)
        ax.set_title(_TITLES.get(metric, metric), loc="left", fontsize=10)
        _mib_axis(ax, metric)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    axes[-1].set_xlabel("iteration")
    return fig


def short_names(members: Sequence[CellView]) -> dict[str, str]:
    """Legend names: the parts of each variant that differ within the group (``jemalloc``, not ``builtin/jemalloc``)."""
    split = [c.variant.split("/") for c in members]
    width = max(len(p) for p in split)
    keep = [i for i in range(width) if len({p[i] if i < len(p) else "" for p in split}) > 1]
    return {c.slug: "/".join(p[i] for i in keep if i < len(p)) or "defaults" for c, p in zip(members, split)}


# ----------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Bar:
    """One stage's value of one quantity: this run's, and the baseline's with its tolerance when compared."""

    current: float | None
    baseline: float | None = None
    tolerance: float | None = None
    regressed: bool = False


Bars = dict[str, dict[str, Bar]]  # quantity -> stage -> bar


def stage_bars(c: CellView) -> Bars:
    """Per-stage values to draw: the comparison's stage metrics when it has some, else the cell's own."""
    bars: Bars = {}
    for row in c.rows:
        sm = stage_metric(str(row.get("metric", "")))
        if sm is not None:
            stage, quantity = sm
            bars.setdefault(quantity, {})[stage] = Bar(_num(row.get("current")), _num(row.get("baseline")),
                                                       _num(row.get("tolerance")), row.get("verdict") == "regression")
    if not bars:
        for s in c.result.stages:
            if s.peak_delta is not None:
                bars.setdefault("hwm_delta", {})[s.stage] = Bar(float(s.peak_delta))
            if s.delta is not None:
                bars.setdefault("rss_delta", {})[s.stage] = Bar(float(s.delta))
    # The peak first: it is what an OOM limit meets.
    return {STAGE_QUANTITIES[q]: bars[q] for q in STAGE_QUANTITIES if q in bars}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _stage_figure(c: CellView, bars: Bars) -> Any:
    from matplotlib.patches import Patch

    stages = list(dict.fromkeys(s for per in bars.values() for s in per))
    with_base = any(b.baseline is not None for per in bars.values() for b in per.values())
    per_panel = 0.75 + 0.36 * len(stages) * (1.6 if with_base else 1)
    fig = _figure(9, 0.9 + per_panel * len(bars))
    axes = fig.subplots(len(bars), 1, squeeze=False)[:, 0]
    what = ("against the baseline (whisker: baseline + tolerance, where a regression starts)" if with_base
            else "this run")
    fig.suptitle(f"{c.spec_id}\nmemory per stage, {what}", fontsize=11)
    height = 0.38 if with_base else 0.6
    shift = height / 2 if with_base else 0.0
    ys = list(range(len(stages)))
    for ax, (quantity, per) in zip(axes, bars.items()):
        row = [per.get(s, Bar(None)) for s in stages]
        if with_base:
            ax.barh([y - shift for y in ys], [(b.baseline or 0) / MIB for b in row], height, color="#9e9e9e",
                    # One-sided: the whisker ends where a regression starts (baseline + tolerance).
                    xerr=[[0.0] * len(row), [(b.tolerance or 0) / MIB for b in row]],
                    error_kw={"elinewidth": 1, "capsize": 3, "ecolor": "#616161"})
        ax.barh([y + shift for y in ys], [(b.current or 0) / MIB for b in row], height,
                color=["#c62828" if b.regressed else "#1565c0" for b in row])
        signed = quantity.startswith("Δ")
        for y, b in zip(ys, row):
            if b.current is not None:  # the figure at the bar's end, outside it
                v = b.current
                ax.annotate(format_size(v, signed=signed), (v / MIB, y + shift), xytext=(3 if v >= 0 else -3, 0),
                            textcoords="offset points", va="center", ha="left" if v >= 0 else "right", fontsize=8)
        ax.set_yticks(ys, stages)
        ax.invert_yaxis()  # stages read top to bottom in the order they ran
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("MiB")
        ax.set_title(quantity, loc="left", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        ax.margins(x=0.18)
        if not with_base:
            continue  # one colour, nothing to tell apart
        handles = [Patch(color="#9e9e9e", label="baseline"), Patch(color="#1565c0", label="this run")]
        if any(b.regressed for b in row):
            handles.append(Patch(color="#c62828", label="regression"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig
