"""``junit.xml``: one test case per cell, in the JUnit format CI systems parse (Jenkins, GitLab, GitHub actions).

- classname ``memgate.<pipeline>.<model>`` (dots inside a model name become ``_``: CI tools read dots as
  packages), name ``<mode>/<runtime>/<allocator>[/tunables][/leak=N]``;
- a leak or a regression is a ``<failure>`` whose type is the verdict and whose message names the growth
  or the metric; a failed, crashed or timed-out child is an ``<error>`` (the measurement did not happen);
- a skipped cell (allocator not installed) is ``<skipped>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from ..units import format_size
from .common import CellView, growth_text, ratio_text, tolerance_text, value_text

# XML 1.0 cannot carry most control characters, and a child's stderr may hold any of them.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: Any) -> str:
    return _INVALID_XML.sub("\N{REPLACEMENT CHARACTER}", str(text))


def case_names(c: CellView) -> tuple[str, str]:
    pipeline, model = c.parts[0], c.parts[1]
    return f"memgate.{pipeline}.{model.replace('.', '_')}", "/".join(c.spec_id.split("/")[2:])


def junit_xml(cells: Sequence[CellView], fingerprint: Mapping[str, Any], created: str = "",
              env_key: str | None = None) -> bytes:
    """The JUnit document; counts in the suite's attributes match its test cases."""
    failures = sum(c.result.status == "leak" or (c.outcome == "regression") for c in cells)
    errors = sum(c.result.status in ("failed", "crashed", "timeout") for c in cells)
    skipped = sum(c.result.status == "skipped" for c in cells)
    seconds = sum(c.result.seconds for c in cells)
    counts = {"tests": str(len(cells)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": "memgate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"memgate {fingerprint.get('key', '')}".strip(), **counts,
                                              **({"timestamp": created.rstrip("Z")} if created else {})})
    props = ET.SubElement(suite, "properties")
    for name, value in (("environment", fingerprint.get("key")), ("baselines", env_key),
                        ("glibc", fingerprint.get("glibc")), ("python", fingerprint.get("python")),
                        ("runtime", fingerprint.get("runtime"))):
        if value:
            ET.SubElement(props, "property", {"name": name, "value": clean(value)})
    for c in cells:
        classname, name = case_names(c)
        case = ET.SubElement(suite, "testcase", {"classname": clean(classname), "name": clean(name),
                                                 "time": f"{c.result.seconds:.3f}"})
        if not _outcome(case, c):  # a failure or error carries the details already
            ET.SubElement(case, "system-out").text = clean(details(c))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _outcome(case: ET.Element, c: CellView) -> bool:
    """Add the skipped, error or failure element; True when the element carries the details."""
    r = c.result
    if r.status == "skipped":
        ET.SubElement(case, "skipped", {"message": clean(r.reason or "skipped")})
        return False
    if r.status in ("failed", "crashed", "timeout"):
        el = ET.SubElement(case, "error", {"type": r.status, "message": clean(f"{r.status}: {r.reason}")})
        el.text = clean(details(c) + ("\n\nstderr (tail):\n" + r.stderr_tail[-4000:] if r.stderr_tail else ""))
        return True
    if r.status == "leak" or c.regressions:
        parts = []
        if r.status == "leak":
            v = c.deciding()
            growth = f"{v.get('metric')} {c.growth()}" if v else c.growth()
            parts.append(f"leak: {growth}; {r.reason}" if r.reason else f"leak: {growth}")
        for row in c.regressions:
            metric = str(row.get("metric"))
            parts.append(f"regression: {metric} {value_text(metric, row.get('current'))} vs baseline "
                         f"{value_text(metric, row.get('baseline'))} ({ratio_text(row.get('ratio'))}, "
                         f"tolerance {tolerance_text(metric, row.get('tolerance'))})")
        el = ET.SubElement(case, "failure", {"type": "leak" if r.status == "leak" else "regression",
                                             "message": clean("; ".join(parts))})
        el.text = clean(details(c))
        return True
    return False


def details(c: CellView) -> str:
    """Plain text for a test case: verdicts with growth and interval, stages, reason."""
    r = c.result
    lines = [f"cell {c.spec_id}", f"status {r.status}, verdict {r.verdict or 'n/a'}, "
             f"{r.iterations_done}/{r.spec.total_iterations} iterations"]
    if r.reason:
        lines.append(f"reason: {r.reason}")
    for metric, v in r.verdicts.items():
        lines.append(f"{metric}: {v.get('verdict')} {growth_text(v)}, steady from {v.get('warmup_end')}"
                     + (f" - {v['reason']}" if v.get("reason") else ""))
    for s in r.stages:
        heap = f", live heap {format_size(s.heap_delta, signed=True)}" if s.heap_delta is not None else ""
        lines.append(f"stage {s.stage}: RSS {format_size(s.rss_before)} {format_size(s.delta, signed=True)}, "
                     f"peak above start {format_size(s.peak_delta)}{heap}")
    for row in c.rows:
        metric = str(row.get("metric"))
        lines.append(f"{row.get('verdict')}: {metric} {value_text(metric, row.get('current'))} "
                     f"(baseline {value_text(metric, row.get('baseline'))}, {ratio_text(row.get('ratio'))})")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
