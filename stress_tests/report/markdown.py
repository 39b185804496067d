"""``summary.md``: the report in GitHub-flavoured Markdown, fit for ``$GITHUB_STEP_SUMMARY``.

Order is what a reviewer needs first: the outcome line, regressions, leaks and failures, then
every cell, the per-stage memory (folded), the environment, and how to read the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..units import format_size
from .common import (
    CellView,
    comparison_rows,
    growth_text,
    latency_text,
    ratio_text,
    tolerance_text,
    unmatched_rows,
    value_text,
)

HOW_TO_READ = """\
- **status**: `ok`, `leak` (memory grows every iteration), `failed`/`crashed`/`timeout` (the child did not \
finish; the reason says why), `skipped` (allocator not installed); **regression**: a metric is worse than \
its baseline by more than the tolerance.
- **verdict** per metric: `leak` when the trend test is significant and the growth is above the floor \
(1 KiB/iteration or more); `no-leak` when the upper end of the interval is below the floor; `inconclusive` \
when neither holds yet (more iterations needed).
- **growth** is the Theil-Sen slope of the steady part in bytes per iteration, with its interval \
(low..high); the first iterations are warm-up (allocators settling) and are excluded; **steady from** is \
where the steady part starts.
- RssAnon decides (heap memory); VmRSS also counts file pages such as mmap'd weights, which are not a \
leak; a rising VmHWM (peak) is a leak too.
- **ratio** is current / baseline; the **tolerance** comes from the spread measured when the baseline was \
recorded, with a floor.
"""


def esc(text: Any) -> str:
    """A table cell: pipes escaped, newlines folded (both would break the row)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def headline(cells: Sequence[CellView]) -> str:
    failed = [c for c in cells if c.failed]
    if not cells:
        return "⚠️ no cells in these results"
    if not failed:
        skipped = sum(c.result.status == "skipped" for c in cells)
        passes = "1 cell passes" if len(cells) == 1 else f"{len(cells)} cells pass"
        return f"✅ {passes}" + (f" ({skipped} skipped)" if skipped else "")
    counts: dict[str, int] = {}
    for c in failed:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    what = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    metrics = sum(len(c.regressions) for c in cells)
    if metrics:  # a leaking cell usually regresses too: say so, or the gate's reason is hidden
        what += f"; {metrics} metric{'s' if metrics > 1 else ''} regressed"
    fail = "cell fails" if len(cells) == 1 else "cells fail"
    return f"❌ {len(failed)} of {len(cells)} {fail} ({what})"


def summary_markdown(cells: Sequence[CellView], fingerprint: Mapping[str, Any], comparison: Any = None,
                     meta: Mapping[str, Any] | None = None) -> str:
    meta = meta or {}
    out = [f"## memgate: {headline(cells)}\n"]
    out.append(environment_line(fingerprint, comparison, meta) + "\n")
    if comparison is None:
        out.append("_No baselines compared: verdicts only._\n")
    else:
        out.append(f"Against the baselines: {comparison_counts(comparison)}\n")
    regressions = [(c, r) for c in cells for r in c.regressions]
    if regressions:
        out.append("### Regressions\n")
        out.append(table(["cell", "metric", "baseline", "current", "ratio", "tolerance", "what moved"],
                         [[c.spec_id, r.get("metric"), value_text(str(r.get("metric")), r.get("baseline")),
                           value_text(str(r.get("metric")), r.get("current")), ratio_text(r.get("ratio")),
                           tolerance_text(str(r.get("metric")), r.get("tolerance")), r.get("cause", "")]
                          for c, r in regressions],
                         right=(2, 3, 4, 5)))
    bad = [c for c in cells if c.result.bad]
    if bad:
        out.append("### Leaks and failures\n")
        out.append(table(["cell", "status", "growth per iteration (interval)", "reason"],
                         [[c.spec_id, c.result.status, c.growth(), c.why()[:300]] for c in bad]))
    out.append("### Cells\n")
    out.append(cell_table(cells))
    out.append(comparison_sections(cells, comparison))
    out.append(stage_sections(cells))
    out.append(environment_details(fingerprint, meta))
    out.append("<details><summary>How to read this</summary>\n\n" + HOW_TO_READ + "\n</details>\n")
    return "\n".join(out)


def comparison_counts(comparison: Any) -> str:
    """``2 regression · 240 ok · 14 new``: how the compared metrics came out."""
    counts: dict[str, int] = {}
    for row in comparison_rows(comparison):
        counts[str(row.get("verdict"))] = counts.get(str(row.get("verdict")), 0) + 1
    order = [k for k in ("regression", "slower", "improvement", "ok", "new", "missing") if k in counts]
    return " · ".join(f"{counts[k]} {k}" for k in order + sorted(set(counts) - set(order))) or "nothing"


def cell_table(cells: Sequence[CellView]) -> str:
    rows = []
    for c in sorted(cells, key=lambda c: not c.failed):  # failing cells first, otherwise in run order
        deciding = c.deciding()
        steady = c.steady_rss()
        rows.append([c.spec_id, c.outcome, c.result.verdict or "—", c.growth(), growth_text(
            c.result.verdicts.get("VmHWM")).split(" (")[0], format_size(steady) if steady is not None else "n/a",
            format_size(c.peak_rss()), latency_text(c.median_latency()),
            deciding.get("warmup_end", "") if deciding else ""])
    return table(["cell", "outcome", "verdict", "RssAnon growth (interval)", "VmHWM growth", "steady RSS",
                  "peak RSS", "median latency", "steady from"], rows, right=(3, 4, 5, 6, 7, 8))


def comparison_sections(cells: Sequence[CellView], comparison: Any) -> str:
    if comparison is None:
        return ""
    out = []
    improved = [(c, r) for c in cells for r in c.rows if r.get("verdict") == "improvement"]
    if improved:
        out.append("### Improvements beyond tolerance (tighten the baseline: `memgate baseline update`)\n")
        out.append(table(["cell", "metric", "baseline", "current", "ratio"],
                         [[c.spec_id, r.get("metric"), value_text(str(r["metric"]), r.get("baseline")),
                           value_text(str(r["metric"]), r.get("current")), ratio_text(r.get("ratio"))]
                          for c, r in improved], right=(2, 3, 4)))
    new = sorted({c.spec_id for c in cells for r in c.rows if r.get("verdict") == "new"})
    if new:
        out.append("### Cells without a baseline (`new`)\n")
        out.append("".join(f"- `{n}`\n" for n in new))
    for warning in getattr(comparison, "warnings", None) or []:
        out.append(f"> ⚠️ {esc(warning)}\n")
    for key in getattr(comparison, "missing_files", None) or []:
        out.append(f"> ⚠️ no baseline file for `{key}`: every cell of it is `new`\n")
    names = sorted({str(r.get("cell")) for r in unmatched_rows(comparison, cells)}
                   | {str(n) for n in getattr(comparison, "not_run", None) or []})
    if names:
        out.append(f"### Baseline entries not run here (`missing`): {len(names)}\n")
        out.append("<details><summary>entries</summary>\n\n" + "".join(f"- `{n}`\n" for n in names)
                   + "\n</details>\n")
    rows = [[c.spec_id, r.get("metric"), value_text(str(r.get("metric")), r.get("baseline")),
             value_text(str(r.get("metric")), r.get("current")), ratio_text(r.get("ratio")),
             tolerance_text(str(r.get("metric")), r.get("tolerance")), r.get("verdict")]
            for c in cells for r in c.rows]
    if rows:
        out.append(f"<details><summary>All {len(rows)} compared metrics</summary>\n\n"
                   + table(["cell", "metric", "baseline", "current", "ratio", "tolerance", "verdict"], rows,
                           right=(2, 3, 4, 5)) + "\n</details>\n")
    return "\n".join(out)


def stage_sections(cells: Sequence[CellView]) -> str:
    with_stages = [c for c in cells if c.result.stages]
    if not with_stages:
        return ""
    out = ["### Memory per stage\n"]
    for c in with_stages:
        out.append(f"<details><summary><code>{c.spec_id}</code></summary>\n\n" + stage_table(c) + "\n</details>\n")
    return "\n".join(out)


def stage_table(c: CellView) -> str:
    rows = []
    for s in c.result.stages:
        anon = None if s.anon_after is None or s.anon_before is None else s.anon_after - s.anon_before
        peak = format_size(s.peak_delta) + (" (upper bound)" if s.peak_method == "hwm" else "")
        rows.append([s.stage, format_size(s.rss_before), format_size(s.delta, signed=True),
                     format_size(anon, signed=True), peak, f"{s.seconds * 1e3:.1f} ms"])
    return table(["stage", "RSS before", "Δ RSS", "Δ anon", "peak above start", "time"], rows,
                 right=(1, 2, 3, 4, 5))


def environment_line(fingerprint: Mapping[str, Any], comparison: Any, meta: Mapping[str, Any]) -> str:
    parts = [f"environment `{fingerprint.get('key', 'unknown')}`"]
    env_key = getattr(comparison, "env_key", None) if comparison is not None else None
    if env_key:
        parts.append(f"baselines `{env_key}`")
    if meta.get("created"):
        parts.append(f"run {meta['created']}")
    if meta.get("memgate"):
        parts.append(f"memgate {meta['memgate']}")
    return " · ".join(parts)


def environment_items(fingerprint: Mapping[str, Any], meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The fingerprint's essentials as (label, value) pairs, for Markdown and HTML alike."""
    fp = fingerprint
    blas = fp.get("blas") or {}
    allocators = ", ".join(f"{a.get('name')} {a.get('version') or ''}".strip()
                           for a in fp.get("allocators") or [] if a.get("installed"))
    items = [("key", fp.get("key")),
             ("CPU", f"{fp.get('cpu')} ({fp.get('cpu_count')} CPUs)" if fp.get("cpu") else None),
             ("kernel", f"{fp.get('os', '')} {fp.get('kernel', '')}".strip() or None), ("glibc", fp.get("glibc")),
             ("Python", fp.get("python")),
             ("numpy", f"{fp.get('numpy')}, BLAS {blas.get('name')} {blas.get('version') or ''}".strip()
              if fp.get("numpy") else None),
             ("runtime", fp.get("runtime")), ("onnxruntime", fp.get("onnxruntime")),
             ("memory", format_size(fp["memory_total"]) if fp.get("memory_total") else None),
             ("allocators installed", allocators or None),
             ("command", " ".join(meta.get("command") or []) or None)]
    return [(k, str(v)) for k, v in items if v]


def environment_details(fingerprint: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    lines = "".join(f"- **{k}**: {esc(v)}\n" for k, v in environment_items(fingerprint, meta))
    return "<details><summary>Environment</summary>\n\n" + lines + "\n</details>\n"
