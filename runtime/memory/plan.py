"""The memory plan: where each tensor and scratch buffer lives, and when buffers come and go."""

from __future__ import annotations

from dataclasses import dataclass, field

from .liveness import Group, Liveness


@dataclass
class MemoryPlan:
    """Buffers and placements for one program under one memory mode.

    ``place`` maps every planned tensor (views and in-place outputs included) to
    ``(buffer, byte offset)``; ``scratch[step]`` lists the same for each scratch buffer.
    Static plans allocate every buffer once; dynamic plans (``"reduce"``) allocate a
    buffer before its first writer (``alloc_start`` before the first step) and drop it
    after its last reader.
    """

    mode: str
    buffers: list[int]
    place: dict[str, tuple[int, int]]
    scratch: list[list[tuple[int, int]]]
    dynamic: bool = False
    alloc_start: list[int] = field(default_factory=list)
    alloc_before: list[list[int]] = field(default_factory=list)
    free_after: list[list[int]] = field(default_factory=list)
    zero_start: list[tuple[int, int, int]] = field(default_factory=list)  # (buffer, offset, nbytes)
    zero_before: list[list[tuple[int, int, int]]] = field(default_factory=list)
    retained: set[str] = field(default_factory=set)
    lower_bound: int = 0
    arena: bool = False
    dynamic_peak: int = 0
    inplace_pairs: int = 0

    @property
    def intermediate_bytes(self) -> int:
        """Bytes reserved for intermediates and scratch (for dynamic plans, their planned peak)."""
        return self.dynamic_peak if self.dynamic else sum(self.buffers)

    @property
    def allocations_per_inference(self) -> int:
        if not self.dynamic:
            return 0
        return len(self.alloc_start) + sum(len(a) for a in self.alloc_before)


def assemble(
    mode: str, lv: Liveness, group_place: dict[int, tuple[int, int]], buffers: list[int],
    *, dynamic: bool = False, arena: bool = False,
) -> MemoryPlan:
    """Turn per-group placements into a plan; dynamic plans get alloc/free lists per buffer."""
    n = lv.n_steps
    place: dict[str, tuple[int, int]] = {}
    scratch: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    zero_start: list[tuple[int, int, int]] = []
    zero_before: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    for g in lv.groups:
        b, off = group_place[g.id]
        if g.scratch is not None:
            step, j = g.scratch
            while len(scratch[step]) <= j:
                scratch[step].append((0, 0))
            scratch[step][j] = (b, off)
        for t in g.tensors:
            place[t] = (b, off)
        if g.zero:
            if g.first < 0:  # aligned size: the padding is the group's own, so fills coalesce
                zero_start.append((b, off, g.size))
            else:
                zero_before[g.first].append((b, off, g.nbytes))
    for t, gid in lv.group_of.items():
        place.setdefault(t, group_place[gid])
    plan = MemoryPlan(
        mode=mode, buffers=buffers, place=place, scratch=scratch, dynamic=dynamic,
        zero_start=merge_ranges(zero_start), zero_before=zero_before, retained=set(lv.retained),
        lower_bound=lv.lower_bound(), arena=arena, inplace_pairs=lv.inplace_pairs,
    )
    if dynamic:
        plan.alloc_before = [[] for _ in range(n)]
        plan.free_after = [[] for _ in range(n)]
        span: dict[int, list[int]] = {}
        for g in lv.groups:
            b = group_place[g.id][0]
            lo, hi = span.get(b, [g.first, g.last])
            span[b] = [min(lo, g.first), max(hi, g.last)]
        for b, (lo, hi) in sorted(span.items()):
            if lo < 0:
                plan.alloc_start.append(b)
            else:
                plan.alloc_before[lo].append(b)
            if hi < n:
                plan.free_after[hi].append(b)
        plan.dynamic_peak = _dynamic_peak(span, buffers, n)
    return plan


def _dynamic_peak(span: dict[int, list[int]], buffers: list[int], n: int) -> int:
    delta = [0] * (n + 3)
    for b, (lo, hi) in span.items():
        delta[lo + 1] += buffers[b]
        delta[hi + 2] -= buffers[b]
    best = run = 0
    for d in delta:
        run += d
        best = max(best, run)
    return best


def merge_ranges(ranges: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Coalesce adjacent (buffer, offset, nbytes) ranges so one fill covers them."""
    out: list[list[int]] = []
    for b, off, nb in sorted(ranges):
        if out and out[-1][0] == b and out[-1][1] + out[-1][2] >= off:
            out[-1][2] = max(out[-1][1] + out[-1][2], off + nb) - out[-1][1]
        else:
            out.append([b, off, nb])
    return [(b, o, n) for b, o, n in out]


def groups_by_kind(lv: Liveness) -> tuple[list[Group], list[Group], list[Group]]:
    """(zeroed-at-start groups, other tensor groups, scratch groups)."""
    zero = [g for g in lv.groups if g.zero and g.first < 0]
    scratch = [g for g in lv.groups if g.scratch is not None]
    rest = [g for g in lv.groups if g.scratch is None and not (g.zero and g.first < 0)]
    return zero, rest, scratch
