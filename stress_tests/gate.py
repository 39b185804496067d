"""``memgate check``: the gating set, run under every installed allocator, compared with the baselines.

The **quick tier** (the default: 20 cells per allocator, about two minutes for four allocators on
two cores) is every pipeline on the tiny ``mlp``, every memory mode of ``u2netp`` at 64x64
(reinfer; memcheck in default and arena), reinfer plus memcheck of ``mobilenetv2`` and ``bert``,
memcheck of ``resnet18``: small models, short runs, the per-stage memory of real architectures.
Recompiling u2netp costs ~3 s per iteration, and a dozen iterations under jemalloc, tcmalloc or
mimalloc still read as a leak (allocator warm-up): it runs in the full tier only.

The **full tier** (``--full``, nightly) runs every pipeline with thousands of iterations and adds
the larger zoo models at their real sizes.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .adapters import MODES
from .baselines import Comparison
from .pipelines import PIPELINES
from .spec import CellResult, CellSpec
from .units import format_size

Options = tuple[tuple[str, str], ...]
SIZE64: Options = (("size", "64"),)


@dataclass(frozen=True)
class Row:
    """One line of a gating set; crossed with its modes, the allocators and the profiles."""

    pipeline: str
    model: str
    modes: tuple[str, ...] = ("default",)
    iterations: int = 60
    options: Options = ()


QUICK: tuple[Row, ...] = (
    *(Row(p, "mlp") for p in PIPELINES if p != "memcheck"),
    Row("memcheck", "mlp", iterations=1),
    Row("reinfer", "u2netp", MODES, 30, SIZE64),
    Row("memcheck", "u2netp", ("default", "arena"), 1, SIZE64),
    Row("reinfer", "mobilenetv2", iterations=30),
    Row("memcheck", "mobilenetv2", iterations=1),
    Row("reinfer", "bert", iterations=30),
    Row("memcheck", "bert", iterations=1),
    Row("memcheck", "resnet18", iterations=1),
)
FULL: tuple[Row, ...] = (
    *(Row(p, "mlp", iterations=3000) for p in PIPELINES if p != "memcheck"),
    Row("memcheck", "mlp", iterations=1),
    *(Row(p, "u2netp", MODES, 1000, SIZE64) for p in ("reinfer", "recreate_request")),
    Row("recompile", "u2netp", MODES, 300, SIZE64),
    Row("mode_switch", "u2netp", ("default",), 200, SIZE64),
    *(Row("memcheck", m, MODES, 1) for m in ("u2netp", "u2net", "resnet50", "unet", "mobilenetv2", "bert")),
    *(Row("reinfer", m, ("default", "arena"), 500) for m in ("mobilenetv2", "bert", "resnet18")),
    Row("recreate_core", "resnet18", ("default",), 200),
    Row("memcheck", "light:squeezenet", iterations=1),
)
#: Rows for a model ``--models`` names that no row of the set covers.
GENERIC: tuple[Row, ...] = (Row("reinfer", "", iterations=30), Row("recreate_request", "", iterations=30),
                            Row("memcheck", "", iterations=1))


def gating_set(models: Sequence[str] | None = None, full: bool = False) -> list[Row]:
    """The rows of the quick (or full) tier, narrowed to ``models``; models it lacks get ``GENERIC`` rows."""
    rows = list(FULL if full else QUICK)
    if not models:
        return rows
    kept = [r for r in rows if r.model in models]
    for model in models:
        if not any(r.model == model for r in kept):
            kept += [Row(r.pipeline, model, r.modes, r.iterations * (20 if full else 1)) for r in GENERIC]
    return kept


def specs(rows: Sequence[Row], allocators: Sequence[str], profiles: Sequence[str], repeat: int = 1,
          timeout: float = 600.0, blas_kernels: Sequence[str] = ()) -> list[CellSpec]:
    """Rows x modes x allocators x profiles (x repeats), each a cell spec with the profile's settings.

    A profile an allocator has no knob for (``profiles.defined``) is left out. With ``blas_kernels``,
    pass ``i`` runs under kernel ``i mod len(blas_kernels)``: a baseline recorded so has its spread,
    and so its tolerance, measured across kernels.
    """
    from .profiles import defined, settings

    once = []
    for row, allocator, profile in itertools.product(rows, allocators, profiles):
        if not defined(profile, allocator):
            continue
        tunables, trim = settings(profile, allocator)
        once += [CellSpec(pipeline=row.pipeline, model=row.model, model_options=row.options, mode=mode,
                          allocator=allocator, tunables=tunables, trim=trim, iterations=row.iterations,
                          timeout=timeout) for mode in row.modes]
    if not blas_kernels:
        return once * repeat  # whole passes, not adjacent copies: repeats then sample different moments of load
    return [s.replace(blas_kernel=blas_kernels[i % len(blas_kernels)]) for i in range(repeat) for s in once]


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class CheckOutcome:
    results: list[CellResult]
    comparison: Comparison
    results_path: Path
    report_path: Path

    def exit_code(self, strict: bool = False) -> int:
        bad = any(r.bad for r in self.results)
        return 1 if bad or self.comparison.failed(strict) else 0


def write_outputs(results: Any, out_dir: Path, comparison: Comparison) -> tuple[Path, Path]:
    """results.json, comparison.json and the report (``stress_tests.report``) into ``out_dir``: (results, HTML)."""
    import json

    from .results import write_results

    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = write_results(out_dir / "results.json", results.cells, results.fingerprint, results.command)
    (out_dir / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=1) + "\n", encoding="utf-8")
    from .report import write_report

    return results_path, Path(write_report(results, out_dir, comparison=comparison))


def run(specs_: Sequence[CellSpec], *, jobs: int, baselines: str | Path, out_dir: str | Path,
        command: Sequence[str], console: Console, err: Console, workdir: Path | None = None,
        require_allocators: bool = False, gate_latency: bool = False,
        cwd: str | Path | None = None) -> CheckOutcome:
    """Run the cells (progress on ``err``), compare them, write results and report into ``out_dir``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .baselines import compare
    from .environment import fingerprint
    from .results import Results
    from .runner import run_cells

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task(f"{len(specs_)} cells", total=len(specs_))

        def done(result: CellResult) -> None:
            progress.advance(task)
            if not err.is_terminal:
                err.print(f"{result.status:8} {result.spec.id} {result.reason[:120]}", markup=False,
                          highlight=False)

        cells = run_cells(specs_, jobs=jobs, workdir=workdir, require_allocators=require_allocators, on_done=done,
                          cwd=cwd)
    results = Results(cells, fingerprint(), list(command))
    comparison = compare(results, baselines, gate_latency=gate_latency)
    path, html = write_outputs(results, Path(out_dir), comparison)
    return CheckOutcome(cells, comparison, path, html)


# ----------------------------------------------------------------------------- display
_VERDICT_STYLE = {"regression": "bold red", "improvement": "cyan", "ok": "green", "new": "yellow", "slower": "magenta",
                  "missing": "yellow"}
_TITLES = {"rss_delta": "RSS change per stage", "hwm_delta": "peak above start per stage (VmHWM)",
           "anon_delta": "anonymous memory change per stage (RssAnon)",
           "steady_rss": "steady-state RSS above the post-import state",
           "steady_anon": "steady-state RssAnon above the post-import state",
           "peak_hwm": "loop peak (VmHWM) above the post-import state",
           "growth": "growth per iteration",
           "latency": "steady latency per iteration"}


def fmt_value(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if row["unit"] == "seconds":
        return f"{value * 1e3:.2f} ms"
    if row["unit"] == "bytes/iteration":
        return format_size(value, signed=key != "tolerance") + "/it"
    return format_size(value)


def verdict_text(verdict: str) -> str:
    style = _VERDICT_STYLE.get(verdict, "")
    return f"[{style}]{verdict}[/{style}]" if style else verdict


def comparison_tables(comparison: Comparison, console: Console, only_changes: bool = False) -> None:
    """One table per metric kind: cell, stage, baseline, current, ratio, tolerance, verdict.

    ``only_changes`` keeps regressions, improvements and missing metrics (new ones are counted below).
    """
    from .metrics import kind

    rows = [r for r in comparison.rows if not only_changes or r["verdict"] not in ("ok", "new")]
    for name, title in _TITLES.items():
        mine = [r for r in rows if kind(r["metric"]) == name]
        if not mine:
            continue
        t = Table(title=title, title_justify="left", show_edge=False)
        staged = ":" in mine[0]["metric"]
        causes = any(r.get("cause") for r in mine)  # VmRSS/VmHWM rows past their gate: how much was file-backed
        for col in ("cell", *(("stage",) if staged else ()), "baseline", "current", "ratio", "± tolerance",
                    "verdict", *(("what moved",) if causes else ())):
            t.add_column(col, justify="left" if col in ("cell", "stage", "verdict", "what moved") else "right",
                         overflow="fold")
        for r in mine:
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ""
            stage = (r["metric"].split(":", 1)[1],) if staged else ()
            t.add_row(escape(r["cell"]), *map(escape, stage), fmt_value(r, "baseline"), fmt_value(r, "current"), ratio,
                      fmt_value(r, "tolerance"), verdict_text(r["verdict"]),
                      *((escape(r.get("cause", "")),) if causes else ()))
        console.print(t)


def comparison_footer(comparison: Comparison, console: Console, strict: bool = False) -> None:
    counts = comparison.counts()
    console.print("compared with " + ", ".join(f"{comparison.baselines_dir}/{k}.json" for k in comparison.env_keys)
                  if comparison.env_keys else "nothing to compare", markup=False)
    console.print("  ".join(verdict_text(k) + f" {v}" for k, v in counts.items()))
    for key in comparison.missing_files:
        console.print(f"[yellow]warning:[/yellow] no baseline file for {key}: every cell is new "
                      f"(record one with `memgate baseline update`)", highlight=False)
    cells = sorted({r["cell"] for r in comparison.new()})
    if cells and len(comparison.missing_files) < len(comparison.env_keys):
        console.print(f"[yellow]warning:[/yellow] {len(cells)} cell(s) or metric(s) have no baseline"
                      + (" (--strict: this fails)" if strict else ""), highlight=False)
    if comparison.improvements():
        console.print("[cyan]improved beyond tolerance:[/cyan] tighten the baseline with `memgate baseline update`")
    if comparison.not_run:
        console.print(f"[dim]{len(comparison.not_run)} baseline entr{'y' if len(comparison.not_run) == 1 else 'ies'}"
                      f" not in this run[/dim]")
    for w in comparison.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)


def check_summary(results: Sequence[CellResult], comparison: Comparison, console: Console) -> None:
    """One line per cell: status, leak verdict, and what the comparison said about it."""
    from .display import styled
    from .metrics import entry_key
    from .profiles import profile_of

    by_cell: dict[str, list[dict[str, Any]]] = {}
    for r in comparison.rows:
        by_cell.setdefault(r["cell"], []).append(r)
    t = Table(title=f"memgate check: {len(results)} cells", show_edge=False)
    for col in ("cell", "status", "leak verdict", "vs baseline", "worst"):
        t.add_column(col, overflow="fold")
    seen = set()
    for res in results:
        s = res.spec
        profile = profile_of(s.allocator, s.tunables, s.trim)
        cell = f"{entry_key(s)}/{s.allocator}" + ("" if profile == "default" else f"/{profile}")
        if cell in seen:
            continue
        seen.add(cell)
        rows = by_cell.get(cell, [])
        verdicts = {r["verdict"] for r in rows}
        summary = next((v for v in ("regression", "missing", "improvement", "new", "ok") if v in verdicts), "")
        # regressions first, then the one furthest beyond its tolerance (a zero baseline has no ratio)
        worst = max((r for r in rows if r["verdict"] in ("regression", "improvement")),
                    key=lambda r: (r["verdict"] == "regression",
                                   abs(r["current"] - r["baseline"]) / max(r["tolerance"], 1e-12)), default=None)
        worst_text = (f"{worst['metric']} {fmt_value(worst, 'baseline')} -> {fmt_value(worst, 'current')}"
                      if worst else res.reason[:100])
        t.add_row(escape(cell), styled(res.status), styled(res.verdict) if res.verdict else "",
                  verdict_text(summary) if summary else "", escape(worst_text))
    console.print(t)
