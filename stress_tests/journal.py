"""The child's running log: JSON lines, flushed as they happen, so a crash loses nothing gathered.

One record per line, each with a ``kind``:

- ``start``: ``fields`` (series names, in sample order: /proc's, then the heap counter's ``HeapLive``,
  ``PyBlocks``, ...), ``probe`` (with ``heap``: which counter, what it covers), ``applied``, ``pid``
- ``begin_stage``: ``stage`` (so a crash names the stage it died in)
- ``stage``: a StageMemory as a dict (with its heap and block figures)
- ``sample``: ``i`` (iteration), ``v`` (values in ``fields`` order, null when missing), ``latency`` (s)
- ``note``: ``text``
- ``info``: ``memory_stats`` and other facts learned along the way

The parent reads it back with ``read_journal`` when the child left no final result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .spec import StageMemory, finite


def journal_path(result_path: str | Path) -> Path:
    """Where the child writes its journal for a given result file."""
    return Path(str(result_path) + ".jsonl")


class Journal:
    """Appends records and flushes each one to the kernel (a killed child keeps what was written)."""

    def __init__(self, path: str | Path) -> None:
        self._f: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())

    def write(self, kind: str, **data: Any) -> None:
        self._f.write(json.dumps({"kind": kind, **finite(data)}, separators=(",", ":")) + "\n")
        self._f.flush()

    def sample(self, i: int, values: Sequence[int | None], latency: float) -> None:
        self._f.write(f'{{"kind":"sample","i":{i},"v":{json.dumps(list(values))},"latency":{latency:.9f}}}\n')
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


@dataclass
class Partial:
    """What a journal holds: enough to report a crashed cell with its samples."""

    fields: list[str] = field(default_factory=list)
    series: dict[str, list[int | None]] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)
    stages: list[StageMemory] = field(default_factory=list)
    applied: dict[str, Any] | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    last_stage: str = ""


def read_journal(path: str | Path) -> Partial:
    """Read a journal; a torn last line (the child died mid-write) is ignored."""
    p = Partial()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return p
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        kind = rec.get("kind")
        if kind == "start":
            p.fields = list(rec.get("fields", []))
            p.series = {f: [] for f in p.fields}
            p.applied = rec.get("applied")
            p.probe = rec.get("probe", {})
        elif kind == "sample" and p.fields:
            for f, v in zip(p.fields, rec.get("v", [])):
                p.series[f].append(v)
            p.latency.append(float(rec.get("latency", 0.0)))
        elif kind == "stage":
            rec.pop("kind")
            p.stages.append(StageMemory(**rec))
        elif kind == "begin_stage":
            p.last_stage = str(rec.get("stage", ""))
        elif kind == "note":
            p.notes.append(str(rec.get("text", "")))
        elif kind == "info":
            rec.pop("kind")
            p.info.update(rec)
    return p
