"""The results file: one JSON document per run, schema-versioned, written atomically.

Format (``"schema": "memgate-results"``, ``"version": 2``; JSON Schema in
``stress_tests/schemas/results.schema.json``)::

    {
      "schema": "memgate-results", "version": 2,
      "created": "2025-01-01T12:00:00Z",       # UTC, ISO 8601
      "memgate": "0.1.0",                       # harness version
      "command": ["memgate", "matrix", ...],    # how it was produced
      "fingerprint": {"key": "Linux-x86_64-glibc2.36-py3.11", "cpu": ..., "kernel": ..., "glibc": ...,
                      "python": ..., "numpy": ..., "blas": {...}, "runtime": ..., "allocators": [...]},
      "cells": [
        {"spec": {pipeline, model, model_options, mode, runtime, allocator, allocator_path, tunables,
                  iterations, warmup, core: {...}, trim, threads, graphs, inject_leak_bytes, ...,
                  target, target_args, python},   # a target cell: pipeline "target", runtime "python"
         "status": "ok" | "leak" | "failed" | "crashed" | "timeout" | "skipped",
         "reason": "...",
         "series": {"VmRSS": [bytes per iteration, null when missing], "VmHWM": [...], "RssAnon": [...],
                    "RssFile": ..., "RssShmem": ..., "VmSize": ..., "VmPeak": ..., "Threads": [count...],
                    "HeapLive": [the allocator's live bytes], "PyBlocks": [pymalloc blocks, a count],
                    "HeapActive": [...], "HeapResident": [...] (jemalloc),
                    "IterPeak": [...], "py_traced": [...] (with tracemalloc)},
         "latency": [seconds per iteration],
         "stages": [{"stage", "rss_before", "rss_after", "anon_before", "anon_after", "peak",
                     "peak_method": "clear_refs" | "hwm", "seconds",
                     "heap_before", "heap_after", "blocks_before", "blocks_after"}],
         "applied": {"allocator", "allocator_path", "allocator_version", "verified", "evidence": [...],
                     "env": {LD_PRELOAD, GLIBC_TUNABLES, MALLOC_CONF, ...}, "tunables": {...}, "notes": [...]},
         "verdict": "leak" | "retention" | "no-leak" | "inconclusive" | null,
         "verdicts": {"VmRSS": SeriesVerdict.to_dict(), ...},
         "memory_stats": {...}, "probe": {"source", "peak_reset", "peak_per_iteration", "heap": {...}, ...,
                  "child": {"python", "executable", "rss_at_start", "anon_at_start", "foreign_modules"}},
         "hunt": [{"site": "file:line", "bytes_per_iteration", "count_per_iteration", ...}],
         "exit_code", "signal", "stderr_tail", "seconds", "notes": [...]}
      ]
    }

Sizes are bytes, times seconds. Every series is sampled after the iteration's garbage collection.
With ``probe.peak_per_iteration`` (the peak is reset at every iteration start) ``IterPeak`` is each
iteration's own peak and ``VmHWM`` the running peak since the loop began (``probe.hwm_origin ==
"loop"``); without it ``IterPeak`` is null and ``VmHWM`` the process high-water mark (``"process"``).
Readers must accept unknown keys inside ``fingerprint``, ``applied``, ``memory_stats`` and ``probe``;
a new top-level or cell field bumps the version. Version 2 added the heap series, the stages' heap
and block figures, the ``retention`` verdict and ``spec.python_malloc``; version-1 files are read
as they are (their cells simply have no heap figures).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import CellResult, SpecError, write_json_atomic

SCHEMA = "memgate-results"
VERSION = 2
READABLE = (1, 2)
SCHEMA_FILE = Path(__file__).with_name("schemas") / "results.schema.json"


class ResultsError(ValueError):
    """A results file that cannot be read as this version of the format."""


@dataclass
class Results:
    cells: list[CellResult]
    fingerprint: dict[str, Any]
    command: list[str] = field(default_factory=list)
    created: str = ""
    memgate: str = ""

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
            "schema": SCHEMA, "version": VERSION,
            "created": self.created or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "memgate": self.memgate or __version__, "command": list(self.command),
            "fingerprint": self.fingerprint, "cells": [c.to_dict() for c in self.cells],
        }


def write_results(path: str | Path, cells: Sequence[CellResult], fingerprint: dict[str, Any],
                  command: Sequence[str] = ()) -> Path:
    """Write a results file atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, Results(list(cells), fingerprint, list(command)).to_dict())
    return path


def read_results(path: str | Path) -> Results:
    """Read and validate a results file (JSON only; nothing is ever unpickled or evaluated)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: not a readable JSON file: {e}") from e
    return from_dict(data, str(path))


def combine(parts: Sequence[Results]) -> tuple[Results, list[str]]:
    """Shards' (or machines') results as one: their cells in the given order, the first fingerprint.

    Returns the combined results and notes: where the parts' environment keys differ, figures
    from different machines sit side by side, which a reader must know.
    """
    if not parts:
        raise ResultsError("no results to combine")
    if len(parts) == 1:
        return parts[0], []
    keys = sorted({str(r.fingerprint.get("key")) for r in parts})
    notes = [f"combined {len(parts)} results files with {sum(len(r.cells) for r in parts)} cells"]
    if len(keys) > 1:
        notes.append(f"the results come from different environments ({', '.join(keys)}); "
                     f"the report shows the first one's fingerprint")
    first = parts[0]
    cells = [c for r in parts for c in r.cells]
    return Results(cells, dict(first.fingerprint), list(first.command), max(r.created for r in parts),
                   first.memgate), notes


def from_dict(data: Any, where: str = "results") -> Results:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: not a memgate results file (no \"schema\": \"{SCHEMA}\")")
    if data.get("version") not in READABLE:
        raise ResultsError(f"{where}: results version {data.get('version')!r}; this memgate reads versions "
                           f"{', '.join(map(str, READABLE))}")
    validate(data, where)
    try:
        cells = [CellResult.from_dict(c) for c in data["cells"]]
    except (SpecError, TypeError, KeyError) as e:
        raise ResultsError(f"{where}: invalid cell: {e}") from e
    return Results(cells, data["fingerprint"], list(data.get("command", [])), data["created"], data["memgate"])


def validate(data: dict[str, Any], where: str = "results") -> None:
    """Check ``data`` against the JSON Schema; the first error names its JSON path."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise ResultsError(f"{where}: {at}: {e.message}")
