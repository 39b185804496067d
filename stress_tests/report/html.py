"""``index.html``: one self-contained page (inline CSS, plots as base64 data URIs, no script, no external asset).

It can be opened from a CI artifact, mailed, or attached to an issue and still show everything.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..units import format_size
from .common import CellView, growth_text, latency_text, ratio_text, tolerance_text, unmatched_rows, value_text
from .markdown import HOW_TO_READ, comparison_counts, environment_items, environment_line, headline
from .plots import Plots

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:0 1.2em 3em;color:#212121}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{margin:1.4em 0 .4em}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
th,td{border:1px solid #e0e0e0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#ffebee}.headline{font-size:1.25em;font-weight:600;padding:.5em .8em;border-radius:6px}
.headline.ok{background:#e8f5e9;color:#1b5e20}.headline.bad{background:#ffebee;color:#b71c1c}
.badge{display:inline-block;padding:0 .5em;border-radius:4px;font-size:.85em;font-weight:600;color:#fff}
.badge.ok,.badge.no-leak,.badge.improvement{background:#2e7d32}.badge.leak,.badge.regression,.badge.crashed,
.badge.failed,.badge.timeout{background:#c62828}.badge.inconclusive,.badge.skipped,.badge.new,
.badge.missing{background:#b26a00}.badge.none{background:#757575}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.3em 0}
article{border-top:1px solid #eee;padding-top:.4em}nav a{margin-right:1em}.muted{color:#666}
pre{background:#fafafa;border:1px solid #eee;padding:.6em;overflow:auto;max-height:24em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}dd{margin:0}
"""


def badge(word: str | None) -> str:
    w = word or "n/a"
    return f'<span class="badge {escape(w if word else "none")}">{escape(w)}</span>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
          bad: Sequence[bool] = ()) -> str:
    """Cells are HTML already (callers escape text)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="bad"' if i < len(bad) and bad[i] else ""
        tds = "".join(f'<td class="num">{v}</td>' if j in numeric else f"<td>{v}</td>" for j, v in enumerate(row))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _image_once(path: Path | None, alt: str, slug: str, embedded: dict[Path, str] | None) -> str:
    """The image the first time ``path`` is shown; after that a link to the article that shows it."""
    if path is None or embedded is None:
        return image(path, alt)
    if path in embedded:
        first = embedded[path]
        return (f'<p class="muted">Per-iteration plot: with <a href="#cell-{escape(first)}">the first run</a>,'
                " which draws every run of this cell.</p>")
    embedded[path] = slug
    return image(path, alt)


def _markdown_inline(text: str) -> str:
    """The few Markdown marks HOW_TO_READ uses (bold, code), after escaping."""
    text = escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def html_page(cells: Sequence[CellView], plots: Plots, fingerprint: Mapping[str, Any], comparison: Any = None,
              meta: Mapping[str, Any] | None = None) -> str:
    meta = meta or {}
    failing = any(c.failed for c in cells)
    title = f"memgate report: {headline(cells)}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width,initial-scale=1">',
           f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
           "<h1>memgate report</h1>",
           f'<p class="headline {"bad" if failing else "ok"}">{escape(headline(cells))}</p>',
           f'<p class="muted">{_markdown_inline(environment_line(fingerprint, comparison, meta))}</p>']
    if comparison is None:
        out.append('<p class="muted">No baselines compared: verdicts only.</p>')
    else:
        out.append(f"<p>Against the baselines: {escape(comparison_counts(comparison))}</p>")
    out.append('<nav><a href="#cells">cells</a><a href="#plots">plots</a><a href="#details">each cell</a>'
               '<a href="#environment">environment</a><a href="#how">how to read</a></nav>')
    out.append(_problems(cells))
    out.append('<h2 id="cells">Cells</h2>' + _cell_table(cells))
    out.append(_comparison(cells, comparison))
    if plots.groups:
        out.append('<h2 id="plots">Allocators overlaid</h2>')
        for key, path in plots.groups.items():
            out.append(f"<h3>{escape(' / '.join(key))}</h3>" + image(path, " / ".join(key)))
    else:
        out.append('<span id="plots"></span>')
    out.append('<h2 id="details">Each cell</h2>')
    embedded: dict[Path, str] = {}  # a plot shared by repeats is embedded once, then linked
    out += [_article(c, plots, embedded) for c in cells]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in environment_items(fingerprint, meta))
    out.append(f'<h2 id="environment">Environment</h2><dl>{items}</dl>')
    how = "".join(f"<li>{_markdown_inline(line[2:])}</li>" for line in HOW_TO_READ.splitlines()
                  if line.startswith("- "))
    out.append(f'<h2 id="how">How to read this</h2><ul>{how}</ul>')
    out.append("</body></html>\n")
    return "\n".join(out)


def _link(c: CellView) -> str:
    return f'<a class="mono" href="#cell-{escape(c.slug)}">{escape(c.spec_id)}</a>'


def _problems(cells: Sequence[CellView]) -> str:
    out = []
    regressions = [(c, r) for c in cells for r in c.regressions]
    if regressions:
        out.append('<h2 id="regressions">Regressions</h2>')
        out.append(table(["cell", "metric", "baseline", "current", "ratio", "tolerance"], [
            [_link(c), escape(str(r.get("metric"))), escape(value_text(str(r.get("metric")), r.get("baseline"))),
             escape(value_text(str(r.get("metric")), r.get("current"))), escape(ratio_text(r.get("ratio"))),
             escape(tolerance_text(str(r.get("metric")), r.get("tolerance")))] for c, r in regressions],
            numeric=(2, 3, 4), bad=[True] * len(regressions)))
    bad = [c for c in cells if c.result.bad]
    if bad:
        out.append('<h2 id="failures">Leaks and failures</h2>')
        out.append(table(["cell", "status", "growth per iteration (interval)", "reason"], [
            [_link(c), badge(c.result.status), escape(c.growth()), escape(c.why()[:400])] for c in bad],
            numeric=(2,), bad=[True] * len(bad)))
    return "\n".join(out)


def _cell_table(cells: Sequence[CellView]) -> str:
    rows = []
    for c in cells:
        steady = c.steady_rss()
        rows.append([_link(c), badge(c.outcome), badge(c.result.verdict) if c.result.verdict else "",
                     escape(c.growth()), escape(growth_text(c.result.verdicts.get("VmHWM")).split(" (")[0]),
                     escape(format_size(steady) if steady is not None else "n/a"), escape(format_size(c.peak_rss())),
                     escape(latency_text(c.median_latency()))])
    return table(["cell", "outcome", "verdict", "RssAnon growth (interval)", "VmHWM growth", "steady RSS",
                  "peak RSS", "median latency"], rows, numeric=(3, 4, 5, 6, 7), bad=[c.failed for c in cells])


def _comparison(cells: Sequence[CellView], comparison: Any) -> str:
    if comparison is None:
        return ""
    rows, bad = [], []
    for c in cells:
        for r in c.rows:
            m = str(r.get("metric"))
            rows.append([_link(c), escape(m), escape(value_text(m, r.get("baseline"))),
                         escape(value_text(m, r.get("current"))), escape(ratio_text(r.get("ratio"))),
                         escape(tolerance_text(m, r.get("tolerance"))), badge(str(r.get("verdict")))])
            bad.append(r.get("verdict") == "regression")
    out = [f"<h2 id=\"comparison\">Against the baselines ({escape(str(getattr(comparison, 'env_key', '')))})</h2>"]
    compared = table(["cell", "metric", "baseline", "current", "ratio", "tolerance", "verdict"], rows,
                     numeric=(2, 3, 4, 5), bad=bad)
    if not rows:
        out.append("<p>No compared metrics.</p>")
    else:  # regressions are listed at the top already; a long table folds so the plots stay near
        out.append(compared if len(rows) <= 40 else
                   f"<details><summary>all {len(rows)} compared metrics</summary>{compared}</details>")
    for warning in getattr(comparison, "warnings", None) or []:
        out.append(f'<p class="muted">⚠️ {escape(str(warning))}</p>')
    for key in getattr(comparison, "missing_files", None) or []:
        out.append(f'<p class="muted">⚠️ no baseline file for <code>{escape(str(key))}</code>: '
                   "every cell of it is new</p>")
    missing = sorted({str(r.get("cell")) for r in unmatched_rows(comparison, cells)}
                     | {str(n) for n in getattr(comparison, "not_run", None) or []})
    if missing:
        out.append(f"<details><summary>{len(missing)} baseline entries not run here (missing)</summary><ul>"
                   + "".join(f"<li><code>{escape(m)}</code></li>" for m in missing) + "</ul></details>")
    return "\n".join(out)


def _article(c: CellView, plots: Plots, embedded: dict[Path, str] | None = None) -> str:
    r = c.result
    out = [f'<article id="cell-{escape(c.slug)}"><h3><span class="mono">{escape(c.spec_id)}</span> '
           f"{badge(c.outcome)}</h3>"]
    facts = [f"{r.iterations_done}/{r.spec.total_iterations} iterations", f"{r.seconds:.1f} s"]
    if r.applied is not None:
        a = r.applied
        facts.append(f"allocator {a.allocator} {a.allocator_version or ''} "
                     f"({'verified' if a.verified else 'NOT verified'})".replace("  ", " "))
        if a.tunables:
            facts.append("tunables " + ", ".join(f"{k}={v}" for k, v in a.tunables.items()))
    out.append(f'<p class="muted">{escape(" · ".join(facts))}</p>')
    if c.why():
        out.append(f"<p>{escape(c.why())}</p>")
    if r.verdicts:
        out.append(table(["metric", "verdict", "growth per iteration", "interval", "p", "steady from"], [
            [escape(m), badge(v.get("verdict")), escape(growth_text(v).split(" (")[0]),
             escape(growth_text(v).split(" (")[1].rstrip(")") if " (" in growth_text(v) else ""),
             escape(f"{v['p_value']:.2g}" if v.get("p_value") is not None else ""),
             escape(str(v.get("warmup_end", "")))]
            for m, v in r.verdicts.items()], numeric=(2, 3, 4, 5)))
    out.append(_image_once(plots.cells.get(c.slug), f"memory per iteration of {c.spec_id}", c.slug, embedded))
    if r.stages:
        rows = []
        for s in r.stages:
            anon = None if s.anon_after is None or s.anon_before is None else s.anon_after - s.anon_before
            rows.append([escape(s.stage), escape(format_size(s.rss_before)), escape(format_size(s.delta, signed=True)),
                         escape(format_size(anon, signed=True)), escape(format_size(s.heap_delta, signed=True)),
                         escape(format_size(s.peak_delta) + (" (upper bound)" if s.peak_method == "hwm" else "")),
                         escape(f"{s.seconds * 1e3:.1f} ms")])
        out.append(table(["stage", "RSS before", "Δ RSS", "Δ anon", "Δ live heap", "peak above start", "time"], rows,
                         numeric=(1, 2, 3, 4, 5, 6)))
    out.append(image(plots.stages.get(c.slug), f"memory per stage of {c.spec_id}"))
    notes = [*(r.applied.notes if r.applied else []), *r.notes]
    if notes:
        out.append("<ul>" + "".join(f"<li>note: {escape(n)}</li>" for n in notes) + "</ul>")
    if r.stderr_tail and r.status in ("failed", "crashed", "timeout"):
        out.append("<details open><summary>stderr (tail)</summary>"
                   f"<pre>{escape(r.stderr_tail[-4000:])}</pre></details>")
    out.append("</article>")
    return "\n".join(out)
