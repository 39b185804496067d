"""From "it leaks" to "here": allocation sites that keep growing, from tracemalloc snapshots.

Three snapshots are taken after garbage collection: when warm-up ends, halfway, and at the
end. A site is reported when it grew in both halves (a one-off allocation grows in one
only), with its growth per iteration over the whole span. tracemalloc sees Python objects
and numpy buffers; memory a native library allocates itself is invisible to it, which the
report states by comparing with the RSS growth.
"""

from __future__ import annotations

import linecache
import tracemalloc
from typing import Any

from .spec import CellSpec

TOP = 15


def snapshot_points(total: int, warmup: int | None) -> tuple[int, int, int]:
    """Iterations (0-based) after which to snapshot: warm-up end, middle, last."""
    end = total - 1
    start = min(warmup if warmup else max(1, total // 5), max(end - 2, 0))
    return start, (start + end) // 2, end


class Hunter:
    def __init__(self, spec: CellSpec, total: int) -> None:
        self.points = snapshot_points(total, spec.warmup)
        self.key = "traceback" if spec.tracemalloc > 1 else "lineno"
        self.snapshots: list[tuple[int, tracemalloc.Snapshot]] = []

    def after_iteration(self, i: int) -> None:
        if i in self.points and all(i != j for j, _ in self.snapshots):
            snap = tracemalloc.take_snapshot().filter_traces([
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, __file__),
                tracemalloc.Filter(False, "<unknown>"),
            ])
            self.snapshots.append((i, snap))

    def sites(self, top: int = TOP) -> list[dict[str, Any]]:
        if len(self.snapshots) < 2:
            return []
        (i0, s0), (i2, s2) = self.snapshots[0], self.snapshots[-1]
        mid = self.snapshots[1] if len(self.snapshots) == 3 else None
        span = max(i2 - i0, 1)
        first_half = _by_key(mid[1].compare_to(s0, self.key)) if mid else None
        second_half = _by_key(s2.compare_to(mid[1], self.key)) if mid else None
        out: list[dict[str, Any]] = []
        for stat in s2.compare_to(s0, self.key):
            if stat.size_diff <= 0:
                continue
            k = _key(stat.traceback)
            if first_half is not None and second_half is not None and (
                    first_half.get(k, 0) <= 0 or second_half.get(k, 0) <= 0):
                continue
            frame = stat.traceback[-1] if self.key == "traceback" else stat.traceback[0]
            out.append({
                "site": f"{frame.filename}:{frame.lineno}",
                "line": linecache.getline(frame.filename, frame.lineno).strip(),
                "bytes_per_iteration": stat.size_diff / span,
                "count_per_iteration": stat.count_diff / span,
                "total_bytes": stat.size_diff,
                "traceback": [f"{f.filename}:{f.lineno}" for f in stat.traceback],
            })
        out.sort(key=lambda s: -s["bytes_per_iteration"])
        return out[:top]


def _key(tb: tracemalloc.Traceback) -> tuple[tuple[str, int], ...]:
    return tuple((f.filename, f.lineno) for f in tb)


def _by_key(stats: list[tracemalloc.StatisticDiff]) -> dict[tuple[tuple[str, int], ...], int]:
    return {_key(s.traceback): s.size_diff for s in stats}
