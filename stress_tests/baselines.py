"""Baselines: the accepted memory figures of each cell, one file per environment, and the gate against them.

``baselines/<env-key>.json`` (key: ``profiles.env_key``; JSON Schema in
``stress_tests/schemas/baseline.schema.json``)::

    {"schema": "memgate-baseline", "version": 2, "env_key": "linux-x86_64-py3.11-numpy2-glibc-default",
     "environment": {"allocator": "glibc", "allocator_version": "2.36", "profile": "default",
                     "tunables": [], "trim": false},
     "entries": {"reinfer/mlp/default/builtin": {
         "pipeline": "reinfer", "model": "mlp", "mode": "default", "runtime": "builtin",
         "iterations": 60, "runs": 3, "recorded": "...", "memgate": "0.1.0",
         "metrics": {"hwm_delta:compile": {"value": 8192, "spread": 4096, "tolerance": 2097152,
                                           "unit": "bytes"}, ...}}}}

Metric names, spread and the tolerance rule: ``stress_tests.metrics``. The tolerance is stored with
each metric when it is recorded, so a reviewer sees the gate and may widen one by hand; ``compare``
uses the stored one. Files are written sorted, indented and atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metrics as m
from .atomic import write_atomic
from .pipelines import case as pipeline_case
from .profiles import env_key, platform_key, profile_of
from .results import Results, read_results
from .spec import CellResult

SCHEMA, VERSION = "memgate-baseline", 2
#: Version 1 stored steady_rss, steady_anon and peak_hwm as absolute levels (they counted what the
#: interpreter's imports mapped, which differs between installs); version 2 stores them as deltas
#: from the child's state after its imports, so version-1 levels are dropped when read. Version 2
#: also added the live-heap metrics (heap_delta:<stage>, steady_heap, heap_growth): against a
#: version-1 file they are not judged (not even as new), and ``compare`` says to record it again.
_V1_LEVELS = ("steady_rss", "steady_anon", "peak_hwm")
READABLE = (1, 2)
V2_KINDS = ("heap_delta", "steady_heap", "heap_growth")
SCHEMA_FILE = Path(__file__).with_name("schemas") / "baseline.schema.json"
DEFAULT_DIR = "baselines"
VERDICTS = ("regression", "improvement", "ok", "new", "missing", "slower")
#: Latency is reported against its baseline but, unless asked (``gate_latency``), a slowdown past its
#: tolerance is ``slower``, not a failing ``regression``: on a shared 2-core machine load alone moved
#: cells 5x (12 of 367 figures per allocator past the 5x floor with eight processes on two cores,
#: clean code). Fine latency gating needs a quiet machine (pytest-benchmark's --benchmark-compare-fail).


class BaselineError(ValueError):
    """A baseline file that cannot be read, or does not fit the schema."""


# ----------------------------------------------------------------------------- files
def validate(data: Any, where: str = "baseline") -> None:
    """Check ``data`` against the schema; the message names the file and the JSON path of the first error."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                    key=lambda e: (len(list(e.absolute_path)), [str(p) for p in e.absolute_path]))
    if errors:
        e = errors[0]
        at = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in e.absolute_path)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BaselineError(f"{where}: {at}: {e.message}{more}")


def read_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file, validated and brought to the current version (``migrate``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BaselineError(f"{path}: not a readable JSON file: {e}") from e
    validate(data, str(path))
    return migrate(data)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A validated file of any known version as the current version (a copy; notes in ``data["migrated"]``)."""
    if data.get("version") == VERSION:
        return data
    out = json.loads(json.dumps(data))
    dropped = 0
    for entry in out["entries"].values():
        for name in _V1_LEVELS:
            dropped += entry["metrics"].pop(name, None) is not None
    out["entries"] = {k: e for k, e in out["entries"].items() if e["metrics"]}
    out["migrated_from"] = out["version"]
    out["version"] = VERSION
    out["migrated"] = (f"version 1 file: {dropped} absolute level(s) ({', '.join(_V1_LEVELS)}) dropped; "
                       "re-record it (memgate baseline update) to gate them as deltas from the post-import state")
    return out


def load_dir(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Every baseline file in ``directory`` by env key (temp files from an interrupted write are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    d = Path(directory)
    if d.is_dir():
        for path in sorted(d.glob("*.json")):
            if not path.name.startswith("."):
                data = read_baseline(path)
                out[data["env_key"]] = data
    return out


_HEAD = ("schema", "version", "env_key", "environment")
_ENTRY = ("pipeline", "model", "mode", "runtime", "iterations", "runs", "recorded", "memgate", "blas_kernels")
_METRIC = ("value", "spread", "tolerance", "unit", "file")


def _ordered(d: dict[str, Any], first: Sequence[str]) -> dict[str, Any]:
    return {**{k: d[k] for k in first if k in d}, **{k: d[k] for k in sorted(d) if k not in first}}


def dumps(data: dict[str, Any]) -> str:
    """The canonical text: entries and metrics sorted, one line per metric, so a review diff names what moved."""
    j = json.dumps
    lines = ["{"] + [f"  {j(k)}: {j(v, sort_keys=True)}," for k, v in _ordered(data, _HEAD).items() if k != "entries"]
    lines.append('  "entries": {')
    entries = sorted(data.get("entries", {}).items())
    for i, (name, entry) in enumerate(entries):
        lines.append(f"    {j(name)}: {{")
        fields = _ordered(entry, _ENTRY)
        lines += [f"      {j(k)}: {j(v, sort_keys=True)}," for k, v in fields.items() if k != "metrics"]
        lines.append('      "metrics": {')
        metrics = sorted(entry.get("metrics", {}).items())
        lines += [f"        {j(k)}: {j(_ordered(v, _METRIC), allow_nan=False)}" + ("," if n < len(metrics) - 1 else "")
                  for n, (k, v) in enumerate(metrics)]
        lines += ["      }", "    }" + ("," if i < len(entries) - 1 else "")]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def write_baseline(path: str | Path, data: dict[str, Any]) -> None:
    """Validate, then write atomically: a reader (or a crash) sees the old file or the new one, never half."""
    data = {k: v for k, v in data.items() if k not in ("migrated", "migrated_from")}
    validate(data, str(path))
    write_atomic(path, dumps(data))


# ----------------------------------------------------------------------------- results -> entries
@dataclass
class Group:
    """The runs of one cell in one environment (repeats are pooled)."""

    env_key: str
    entry_key: str
    cells: list[CellResult] = field(default_factory=list)
    kernels: list[str | None] = field(default_factory=list)  # the BLAS kernel of each cell, in order

    def kernel_names(self, cells: Sequence[CellResult] | None = None) -> list[str]:
        """The distinct BLAS kernels ``cells`` (default: all) ran on, sorted."""
        keep = self.cells if cells is None else cells
        return sorted({k for c, k in zip(self.cells, self.kernels) if k and any(c is x for x in keep)})


def cell_kernel(cell: CellResult, fingerprint: dict[str, Any]) -> str | None:
    """The BLAS kernel a cell ran on: its own override, else the kernel of the machine that ran it."""
    env = cell.applied.env if cell.applied else {}
    return (cell.spec.blas_kernel or env.get("OPENBLAS_CORETYPE")
            or (fingerprint.get("blas") or {}).get("kernel") or None)


def group(results: Iterable[Results]) -> dict[tuple[str, str], Group]:
    out: dict[tuple[str, str], Group] = {}
    for res in results:
        for c in res.cells:
            if c.status == "skipped":
                continue
            key = (env_key(res.fingerprint, c.spec.allocator, c.spec.tunables, c.spec.trim), m.entry_key(c.spec))
            g = out.setdefault(key, Group(*key))
            g.cells.append(c)
            g.kernels.append(cell_kernel(c, res.fingerprint))
    return out


def make_entry(g: Group, recorded: str, version: str) -> dict[str, Any]:
    spec = g.cells[0].spec
    metrics = {}
    files = m.pooled_file(g.cells)
    for name, (value, spread, _, slack) in m.pooled(g.cells).items():
        metrics[name] = {"value": m.rounded(name, value), "spread": m.rounded(name, spread),
                         "tolerance": m.rounded(name, m.tolerance(name, value, spread, slack)), "unit": m.unit(name)}
        if name in files:
            metrics[name]["file"] = m.rounded(name, files[name])
    entry = {"pipeline": spec.pipeline, "model": m.model_label(spec), "mode": spec.mode, "runtime": spec.runtime,
             "iterations": spec.iterations, "runs": len(g.cells), "recorded": recorded, "memgate": version,
             "metrics": metrics}
    kernels = g.kernel_names()
    if kernels:
        entry["blas_kernels"] = kernels
    return entry


def _environment(cell: CellResult) -> dict[str, Any]:
    s = cell.spec
    return {"allocator": s.allocator, "allocator_version": cell.applied.allocator_version if cell.applied else None,
            "profile": profile_of(s.allocator, s.tunables, s.trim), "tunables": [list(t) for t in s.tunables],
            "trim": s.trim}


@dataclass
class FileChange:
    """What an update did to one baseline file."""

    env_key: str
    path: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # "entry: metric old -> new" lines
    same: list[str] = field(default_factory=list)
    kept: int = 0  # entries not run, left as they were
    skipped: list[str] = field(default_factory=list)  # runs that were not recorded, with why

    def lines(self) -> list[str]:
        head = (f"{self.path}: {len(self.added)} added, {len(self.changed)} changed, {len(self.same)} unchanged, "
                f"{self.kept} kept (not run)")
        return ([head] + [f"  + {k}" for k in self.added] + [f"  ~ {k}" for k in self.changed]
                + [f"  ! {k}" for k in self.skipped])


def apply(existing: dict[str, dict[str, Any]], results: Sequence[Results], directory: str | Path,
          extra: Sequence[dict[str, Any]] = ()) -> list[FileChange]:
    """Write the entries of ``results`` (and of baseline files ``extra``) into ``directory``.

    Only entries that were run are written; every other entry and every other environment's file
    is left as it was. Runs that did not finish cleanly (a leak, a failure, a self-test injection)
    are never recorded.
    """
    import datetime as dt

    from . import __version__

    directory = Path(directory)
    files: dict[str, dict[str, Any]] = {k: json.loads(json.dumps(v)) for k, v in existing.items()}
    before = {k: dict(v["entries"]) for k, v in files.items()}
    changes: dict[str, FileChange] = {}
    touched: dict[str, set[str]] = defaultdict(set)
    stamp = max((r.created for r in results if r.created),
                default=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def change(key: str) -> FileChange:
        return changes.setdefault(key, FileChange(key, directory / f"{key}.json"))

    for data in extra:
        target = files.setdefault(data["env_key"], {**data, "entries": {}})
        target["environment"] = data["environment"]
        target["entries"].update(data["entries"])
        touched[data["env_key"]] |= set(data["entries"])
        change(data["env_key"])
    for (key, entry), g in group(results).items():
        good = [c for c in g.cells if c.status == "ok" and not c.spec.inject_leak_bytes and not c.spec.inject_fault]
        for c in g.cells:
            if not any(c is ok for ok in good):
                why = "self-test injection" if (c.spec.inject_leak_bytes or c.spec.inject_fault) else c.status
                change(key).skipped.append(f"{entry}: not recorded ({why})")
        g.kernels = [k for c, k in zip(g.cells, g.kernels) if any(c is ok for ok in good)]
        g.cells = good
        if not good or not m.pooled(good):
            continue
        target = files.setdefault(key, {"schema": SCHEMA, "version": VERSION, "env_key": key, "entries": {}})
        target["version"] = VERSION  # its entries now carry this version's metrics
        target["environment"] = _environment(good[0])
        target["entries"][entry] = make_entry(g, stamp, __version__)
        touched[key].add(entry)
        change(key)
    for key, ch in changes.items():
        if key not in files:  # nothing recordable for this environment
            continue
        old, new = before.get(key, {}), files[key]["entries"]
        for entry in sorted(touched[key]):
            if entry not in old:
                ch.added.append(entry)
            elif old[entry] != new[entry]:
                ch.changed.append(f"{entry}: {_metric_diff(old[entry], new[entry])}")
            else:
                ch.same.append(entry)
        ch.kept = len([e for e in old if e not in touched[key]])
        write_baseline(ch.path, files[key])
    return sorted(changes.values(), key=lambda c: c.env_key)


def _metric_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What moved: metrics beyond the old tolerance by name, the rest counted, metrics added or gone."""
    om, nm = old.get("metrics", {}), new.get("metrics", {})
    parts, within = [], 0
    for name in sorted(set(om) | set(nm)):
        a, b = om.get(name), nm.get(name)
        if a is None or b is None:
            parts.append(f"{'+' if a is None else '-'}{name}")
        elif a["value"] != b["value"]:
            if abs(b["value"] - a["value"]) > a.get("tolerance", 0):
                parts.append(f"{name} {_fmt(name, a['value'])} -> {_fmt(name, b['value'])} "
                             f"(beyond ±{_fmt(name, a.get('tolerance'))})")
            else:
                within += 1
    if within:
        parts.append(f"{within} metric(s) moved within tolerance")
    return ", ".join(parts) or "metadata only (runs, iterations, spread, tolerance or date)"


def update(results: Sequence[Results], directory: str | Path = DEFAULT_DIR) -> list[FileChange]:
    """``memgate baseline update``: record the cells of ``results`` into ``directory``."""
    return apply(load_dir(directory), results, directory)


def merge(paths: Sequence[str | Path], out: str | Path) -> list[FileChange]:
    """``memgate baseline merge``: results files (pooled as repeats) and baseline files into ``out``."""
    results, extra = [], []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BaselineError(f"{p}: not a readable JSON file: {e}") from e
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            validate(data, str(p))
            extra.append(data)
        else:
            results.append(read_results(p))
    return apply(load_dir(out), results, out, extra)


def _fmt(metric: str, value: float | None) -> str:
    from .units import format_size

    if value is None:
        return "n/a"
    if m.unit(metric) == "seconds":
        return f"{value * 1e3:.2f} ms"
    growth = m.kind(metric) in ("growth", "heap_growth")
    return format_size(value, signed=growth) + ("/it" if growth else "")


# ----------------------------------------------------------------------------- compare
@dataclass
class Comparison:
    """Every metric of every cell that ran, against its baseline.

    ``rows``: dicts with ``cell, pipeline, model, mode, runtime, allocator, metric, baseline, current,
    ratio, tolerance, verdict`` (and ``env_key``, ``profile``, ``unit``); ``verdict`` is one of
    ``VERDICTS``. ``env_key``: the one baseline file compared with, or the platform part of the key when
    the run spans several allocators or profiles (each row names its own ``env_key``).
    """

    rows: list[dict[str, Any]]
    env_key: str
    baselines_dir: str = DEFAULT_DIR
    env_keys: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _with(self, verdict: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["verdict"] == verdict]

    def regressions(self) -> list[dict[str, Any]]:
        return self._with("regression")

    def improvements(self) -> list[dict[str, Any]]:
        return self._with("improvement")

    def new(self) -> list[dict[str, Any]]:
        return self._with("new")

    def missing(self) -> list[dict[str, Any]]:
        return self._with("missing")

    def failed(self, strict: bool = False) -> bool:
        """A regression fails the gate; under ``strict`` so does a cell or metric without a baseline."""
        return bool(self.regressions() or (strict and (self.new() or self.missing())))

    def counts(self) -> dict[str, int]:
        return {v: len(self._with(v)) for v in VERDICTS}

    def to_dict(self) -> dict[str, Any]:
        return {"env_key": self.env_key, "baselines_dir": self.baselines_dir, "env_keys": self.env_keys,
                "missing_files": self.missing_files, "not_run": self.not_run, "warnings": self.warnings,
                "counts": self.counts(), "rows": self.rows}


def _as_results(results: Results | Sequence[CellResult] | str | Path) -> Results:
    if isinstance(results, (str, Path)):
        return read_results(results)
    if isinstance(results, Results):
        return results
    from .environment import fingerprint

    return Results(list(results), fingerprint(allocators=False))


def judge(baseline: float | None, current: float | None, tol: float | None) -> str:
    if baseline is None:
        return "new"
    if current is None or tol is None:
        return "missing"
    if current - baseline > tol:
        return "regression"
    if baseline - current > tol:
        return "improvement"
    return "ok"


def _file_move(metric: str, stored: dict[str, Any] | None, file_now: float | None) -> dict[str, Any]:
    """The file-backed part of a VmRSS/VmHWM figure now and in the baseline, and how much it moved.

    ``compare`` judges such a figure on its move less the file-backed move: pages of mapped files
    (libraries, mmap'd weights) are the install's and the kernel's, not what the program holds.
    """
    if m.anon_twin(metric) is None or file_now is None:
        return {}
    out: dict[str, Any] = {"file_current": file_now}
    if stored is not None and stored.get("file") is not None:
        out["file_baseline"] = stored["file"]
        out["file_move"] = file_now - stored["file"]
    return out


def _name_causes(rows: Sequence[dict[str, Any]]) -> None:
    """Say, on every VmRSS/VmHWM row that moved past its tolerance, how much was file-backed and RssAnon.

    ``+6.0 MiB VmRSS, of which +8.7 MiB file-backed, RssAnon +0.0 MiB``: a reader sees at once whether
    the program holds more or the kernel mapped more pages of a file.
    """
    from .units import format_size

    by_metric = {r["metric"]: r for r in rows}
    for r in rows:
        twin = m.anon_twin(r["metric"])
        if twin is None or r["baseline"] is None or r["current"] is None or r["tolerance"] is None:
            continue
        move = r["current"] - r["baseline"]
        if abs(move) <= r["tolerance"]:
            continue
        what = "VmHWM" if r["metric"].startswith(("hwm_delta", "peak_hwm")) else "VmRSS"
        parts = [f"{format_size(move, signed=True)} {what}"]
        if r.get("file_move") is not None:
            parts.append(f"of which {format_size(r['file_move'], signed=True)} file-backed")
        a = by_metric.get(twin)
        if a is not None and a["baseline"] is not None and a["current"] is not None:
            parts.append(f"RssAnon {format_size(a['current'] - a['baseline'], signed=True)}")
        r["cause"] = ", ".join(parts)


def compare(results: Results | Sequence[CellResult] | str | Path, baselines_dir: str | Path = DEFAULT_DIR,
            gate_latency: bool = False) -> Comparison:
    """Compare a run with ``baselines_dir/<env-key>.json``; repeats of a cell are pooled to their median.

    Latency past its tolerance is ``slower`` (reported, not failing) unless ``gate_latency``.
    """
    res = _as_results(results)
    stored = load_dir(baselines_dir)
    rows: list[dict[str, Any]] = []
    used: dict[str, set[str]] = defaultdict(set)
    warnings: list[str] = []
    for (key, entry_name), g in group([res]).items():
        spec = g.cells[0].spec
        profile = profile_of(spec.allocator, spec.tunables, spec.trim)
        base_file = stored.get(key)
        entry = (base_file or {}).get("entries", {}).get(entry_name)
        used[key].add(entry_name)
        current = m.pooled(g.cells)
        files_now = m.pooled_file(g.cells)
        base_metrics = entry["metrics"] if entry else {}
        iterates = bool(spec.target) or pipeline_case(spec.pipeline).iterates
        if entry and entry["iterations"] != spec.iterations and iterates:
            warnings.append(f"{entry_name} ({key}): {spec.iterations} iterations now, {entry['iterations']} in the "
                            f"baseline; growth and steady figures compare best at equal lengths")
        recorded_kernels = (entry or {}).get("blas_kernels") or []
        unmeasured = [k for k in g.kernel_names() if recorded_kernels and k not in recorded_kernels]
        if unmeasured:
            warnings.append(f"{entry_name} ({key}): runs on BLAS kernel {', '.join(unmeasured)}, recorded on "
                            f"{', '.join(recorded_kernels)}; its tolerances were measured across those kernels only")
        cell = f"{entry_name}/{spec.allocator}" + ("" if profile == "default" else f"/{profile}")
        names = list(current) + [n for n in base_metrics if n not in current]
        file_version = int((base_file or {}).get("migrated_from", (base_file or {}).get("version", VERSION)))
        if file_version < VERSION and entry:
            # A metric the file's version could not record is not judged (not even as new): a
            # version-1 file gates what it gated, and says how to gate the rest.
            # (its absolute levels were dropped when read: they are not judged as new either)
            predating = [n for n in names if (m.kind(n) in V2_KINDS or n in _V1_LEVELS) and n not in base_metrics]
            names = [n for n in names if n not in predating]
            if predating:
                warnings.append(f"{key}: baseline version {file_version} predates the heap metrics "
                                f"({', '.join(V2_KINDS)}) and the levels above the post-import state "
                                f"({', '.join(_V1_LEVELS)}); record it again (memgate baseline update) to gate them")
        for name in names:
            b = base_metrics.get(name)
            now = current.get(name)
            baseline = b["value"] if b else None
            cur = now[0] if now else None
            tol = (b.get("tolerance") if b else None)
            if b is not None and tol is None:
                tol = m.tolerance(name, b["value"], b["spread"])
            ratio = cur / baseline if cur is not None and baseline else None
            row = {"cell": cell, "pipeline": spec.pipeline, "model": m.model_label(spec), "mode": spec.mode,
                   "runtime": spec.runtime, "allocator": spec.allocator, "metric": name, "baseline": baseline,
                   "current": cur, "ratio": ratio, "tolerance": tol, "env_key": key, "profile": profile,
                   "unit": m.unit(name)}
            row.update(_file_move(name, b, files_now.get(name)))
            judged = cur if cur is None or row.get("file_move") is None else cur - row["file_move"]
            row["verdict"] = judge(baseline, judged, tol)
            if row["verdict"] == "regression" and m.unit(name) == "seconds" and not gate_latency:
                row["verdict"] = "slower"
            rows.append(row)
        _name_causes([r for r in rows if r["cell"] == cell and r["env_key"] == key])
        version = (base_file or {}).get("environment", {}).get("allocator_version")
        now_version = next((c.applied.allocator_version for c in g.cells if c.applied), None)
        if version and now_version and version != now_version:
            warnings.append(f"{key}: {spec.allocator} {now_version} now, {version} when the baseline was recorded")
    keys = sorted(used)
    not_run = [f"{k}: {e}" for k in keys for e in sorted(stored.get(k, {}).get("entries", {})) if e not in used[k]]
    env = keys[0] if len(keys) == 1 else platform_key(res.fingerprint)
    return Comparison(rows, env, str(baselines_dir), keys, [k for k in keys if k not in stored], not_run,
                      sorted(set(warnings)))
