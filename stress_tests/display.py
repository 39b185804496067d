"""What people read: the run summary, the matrix table, the hunt sites and the doctor's report."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .spec import ANALYZED, CellResult
from .units import format_metric, format_size

_STYLE = {"ok": "green", "leak": "bold red", "failed": "red", "crashed": "bold red", "timeout": "red",
          "skipped": "yellow", "no-leak": "green", "inconclusive": "yellow", "retention": "magenta"}


def styled(word: str | None) -> str:
    if word is None:
        return "[dim]n/a[/dim]"
    style = _STYLE.get(word)
    return f"[{style}]{word}[/{style}]" if style else word


def _slope(v: dict[str, Any] | None) -> str:
    if not v or v.get("slope") is None:
        return "n/a"
    return f"{format_metric(str(v.get('metric', '')), v['slope'], signed=True)}/it"


def summary(r: CellResult, console: Console) -> None:
    """The readable outcome of one cell: verdict, growth per iteration, per-stage memory."""
    console.print(f"[bold]{escape(r.spec.id)}[/bold]")  # a target's [args] are not markup
    verdict = f"   verdict {styled(r.verdict)}" if r.verdict else ""
    console.print(f"status {styled(r.status)}{verdict}   iterations {r.iterations_done}/{r.spec.total_iterations}"
                  f"   {r.seconds:.1f} s")
    if r.reason:
        console.print(f"reason: {r.reason}", markup=False)
    a = r.applied
    if a is not None:
        version = f" {a.allocator_version}" if a.allocator_version else ""
        proof = "; ".join(a.evidence) if a.evidence else "no evidence"
        console.print(f"allocator: {a.allocator}{version} ({'verified' if a.verified else 'NOT verified'}: {proof})",
                      markup=False)
        shown = {k: v for k, v in a.env.items() if k in ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF")
                 or k.startswith(("TCMALLOC_", "MIMALLOC_"))}
        if shown:
            console.print("environment: " + " ".join(f"{k}={v}" for k, v in shown.items()), markup=False)
    heap = r.probe.get("heap") or {}
    if heap.get("source"):
        console.print(f"heap counter: {heap['source']} ({heap.get('scope', '')})", markup=False)
    elif heap.get("error"):
        console.print(f"heap counter: none ({heap['error']}); RSS decides", markup=False)
    if r.verdicts:
        t = Table(title="growth per iteration", title_justify="left", show_edge=False)
        for col in ("metric", "verdict", "slope", "interval", "p", "steady from"):
            t.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
        for metric, v in r.verdicts.items():
            low, high = v.get("slope_low"), v.get("slope_high")
            interval = (f"{format_metric(metric, low, signed=True)}..{format_metric(metric, high, signed=True)}"
                        if low is not None else "")
            p = f"{v['p_value']:.2g}" if v.get("p_value") is not None else ""
            t.add_row(metric, styled(v.get("verdict")), _slope(v), interval, p, str(v.get("warmup_end", "")))
        console.print(t)
        for metric, v in r.verdicts.items():
            if v.get("verdict") != "no-leak" and v.get("reason"):
                console.print(f"  {metric}: {v['reason']}", markup=False, style="dim")
    elif r.series:
        _raw_growth(r, console)
    if r.stages:
        stages(r, console)
    if r.latency:
        lat = sorted(r.latency)
        console.print(f"latency per iteration: median {statistics.median(lat) * 1e3:.2f} ms, "
                      f"max {lat[-1] * 1e3:.2f} ms")
    for note in [*(a.notes if a else []), *r.notes]:
        console.print(f"note: {note}", markup=False)
    if r.status in ("failed", "crashed", "timeout") and r.stderr_tail:
        console.print("[dim]stderr (tail):[/dim]")
        console.print(r.stderr_tail[-3000:], markup=False, highlight=False)


def _raw_growth(r: CellResult, console: Console) -> None:
    """Without a verdict, the plain first-to-last change per iteration of the analysed series."""
    parts = []
    for metric in ANALYZED:
        values = [v for v in r.series.get(metric, []) if v is not None]
        if len(values) >= 2:
            per = (values[-1] - values[0]) / (len(values) - 1)
            parts.append(f"{metric} {format_metric(metric, per, signed=True)}/it")
    if parts:
        console.print("raw growth (last - first): " + ", ".join(parts))


def stages(r: CellResult, console: Console) -> None:
    methods = {s.peak_method for s in r.stages}
    caption = ("peak: highest RSS during the stage (reset at its start)" if methods == {"clear_refs"} else
               "peak: process high-water mark (no peak reset here: an upper bound for each stage)")
    t = Table(title="memory per stage", title_justify="left", caption=caption, caption_justify="left",
              show_edge=False)
    heap = any(s.heap_delta is not None for s in r.stages)
    for col in ("stage", "RSS before", "Δ RSS", "Δ anon", *(("Δ heap", "Δ blocks") if heap else ()),
                "peak above start", "time"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for s in r.stages:
        anon = None if s.anon_after is None or s.anon_before is None else s.anon_after - s.anon_before
        live = (format_size(s.heap_delta, signed=True), "n/a" if s.blocks_delta is None else f"{s.blocks_delta:+d}")
        t.add_row(s.stage, format_size(s.rss_before), format_size(s.delta, signed=True),
                  format_size(anon, signed=True), *(live if heap else ()), format_size(s.peak_delta),
                  f"{s.seconds * 1e3:.1f} ms")
    console.print(t)


def matrix_table(results: Sequence[CellResult], console: Console) -> None:
    t = Table(title=f"{len(results)} cells", show_lines=False)
    for col in ("cell", "status", "verdict", "heap/it", "RssAnon/it", "VmHWM/it", "peak RSS", "median ms", "reason"):
        t.add_column(col, overflow="fold")
    for r in results:
        peak = max((v for v in r.series.get("VmHWM", []) if v is not None), default=None)
        lat = f"{statistics.median(r.latency) * 1e3:.2f}" if r.latency else ""
        t.add_row(escape(r.spec.id), styled(r.status), styled(r.verdict) if r.verdict else "",
                  _slope(r.verdicts.get("HeapLive")), _slope(r.verdicts.get("RssAnon")),
                  _slope(r.verdicts.get("VmHWM")),
                  format_size(peak), lat, escape(r.reason[:160]))
    console.print(t)


def hunt_report(r: CellResult, console: Console) -> None:
    """The growing sites (tracemalloc's, and memray's with --native) and how much of the growth they explain."""
    native = r.spec.native
    if not r.hunt:
        tools = "(tracemalloc, memray)" if native else "under tracemalloc"
        console.print(f"no allocation site grew steadily {tools}")
    else:
        t = Table(title="allocation sites that grew in both halves of the run", title_justify="left", show_edge=False)
        for col in ("site", "seen by", "bytes/iteration", "blocks/iteration", "total", "code"):
            t.add_column(col, overflow="fold")
        for s in r.hunt:
            t.add_row(s["site"], s.get("source", "tracemalloc"), format_size(s["bytes_per_iteration"]),
                      f"{s['count_per_iteration']:.2f}", format_size(s["total_bytes"]), s.get("line", ""))
        console.print(t)
    traced = sum(s["bytes_per_iteration"] for s in r.hunt if s.get("source", "tracemalloc") == "tracemalloc")
    by_memray = sum(s["bytes_per_iteration"] for s in r.hunt if s.get("source") == "memray")
    heap = (r.verdicts.get("HeapLive") or {}).get("slope")
    rss = (r.verdicts.get("RssAnon") or {}).get("slope")
    seen = f"tracemalloc sees {format_size(traced)}/iteration"
    if native:
        seen += f", memray {format_size(by_memray)}/iteration"
    if heap is not None:
        seen += f"; the allocator's live heap grows {format_size(heap, signed=True)}/iteration"
    if rss is not None:
        seen += f"; RssAnon {format_size(rss, signed=True)}/iteration"
    growth = heap if heap is not None else rss
    if growth is None:
        console.print(seen)
    elif native and heap is not None and heap > 1024 and by_memray + traced < 0.5 * heap:
        console.print(f"{seen}: the rest was allocated through a function pointer (ctypes, dlsym'd malloc) that "
                      f"memray's hooks cannot intercept, or by a thread memray did not follow")
    elif not native and growth > 1024 and traced < 0.9 * growth:
        console.print(f"{seen}: the rest is native memory tracemalloc cannot see (memgate hunt --native "
                      f"shows C extension and library sites)")
    elif heap is None and rss is not None and traced > 1.1 * max(rss, 0):
        console.print(f"{seen}: the allocator is absorbing the growth in memory it already holds "
                      f"(it reaches RSS once that runs out)")
    else:
        console.print(seen)


def doctor_report(info: dict[str, Any], console: Console) -> None:
    fp = info["fingerprint"]
    console.print(f"[bold]memgate doctor[/bold]  ({fp['key']})")
    for label, value in (("CPU", f"{fp['cpu']} ({fp['cpu_count']} CPUs)"), ("kernel", f"{fp['os']} {fp['kernel']}"),
                         ("glibc", fp["glibc"] or "not glibc"),
                         ("Python", f"{fp['python']} ({fp['python_executable']})"),
                         ("numpy", f"{fp['numpy']}, BLAS {fp['blas'].get('name')} {fp['blas'].get('version') or ''}"),
                         ("runtime", fp["runtime"]), ("onnxruntime", fp["onnxruntime"] or "not installed"),
                         ("probe", info["probe"]), ("peak reset", info["peak_reset"]), ("zoo", info["zoo"])):
        console.print(f"  {label:12} {value}", markup=False, highlight=False)
    t = Table(title="allocators", title_justify="left", show_edge=False)
    for col in ("name", "status", "path", "version", "verified in a child"):
        t.add_column(col, overflow="fold")
    for row in info["allocators"]:
        status = "[green]installed[/green]" if row["installed"] else "[yellow]missing[/yellow]"
        t.add_row(row["name"], status, row["path"] or "", row.get("version") or "", row.get("verified", ""))
    console.print(t)
    runtimes = Table(title="runtimes (--runtime NAME)", title_justify="left", show_edge=False)
    for col in ("name", "version", "from"):
        runtimes.add_column(col, overflow="fold")
    for row in info.get("runtimes", []):
        version = row["version"] or f"[yellow]unavailable[/yellow]: {escape(row['error'])}"
        runtimes.add_row(row["name"], version, row["source"])
    console.print(runtimes)
    for line in info.get("problems", []):
        console.print(f"[yellow]![/yellow] {line}", highlight=False)
