"""One planner per memory mode: liveness groups -> buffers and offsets.

- ``default``: every intermediate owns a buffer, allocated at the first inference and
  kept; scratch shares one workspace sized to the largest step (scratch of different
  steps is never live together). No in-place.
- ``reduce``: every group owns a buffer allocated just before its producer and dropped
  after its last reader: the least live memory, allocations on every inference.
- ``reuse``: groups of equal byte size share a buffer when their lifetimes do not overlap;
  scratch shares one workspace as in ``default``.
- ``arena``: one arena; offsets by greedy-by-size (TFLite's arena planner, Pisarchyk and
  Lee 2020), best of a few orderings, then a short seeded random search while above the
  lower bound.
Under ``atomic_clean_policy=0`` the memset groups sit side by side at the start of a
block of their own (the arena's head in ``"arena"``) so one fill zeroes them all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from .liveness import Group, Liveness, aligned
from .plan import MemoryPlan, assemble, groups_by_kind


def _zero_block(zero: list[Group], place: dict[int, tuple[int, int]], buffers: list[int]) -> None:
    if not zero:
        return
    b, off = len(buffers), 0
    for g in zero:
        place[g.id] = (b, off)
        off += g.size
    buffers.append(off)


def _workspace(scratch: list[Group], place: dict[int, tuple[int, int]], buffers: list[int]) -> None:
    """One buffer for all scratch, sized to the step that needs the most."""
    if not scratch:
        return
    ws = len(buffers)
    per_step: dict[int, int] = {}
    for g in scratch:
        place[g.id] = (ws, per_step.get(g.first, 0))
        per_step[g.first] = per_step.get(g.first, 0) + g.size
    buffers.append(max(per_step.values()))


def plan_default(lv: Liveness) -> MemoryPlan:
    zero, rest, scratch = groups_by_kind(lv)
    place: dict[int, tuple[int, int]] = {}
    buffers: list[int] = []
    _zero_block(zero, place, buffers)
    for g in rest:
        place[g.id] = (len(buffers), 0)
        buffers.append(g.size)
    _workspace(scratch, place, buffers)
    return assemble("default", lv, place, buffers)


def plan_reduce(lv: Liveness) -> MemoryPlan:
    zero, rest, scratch = groups_by_kind(lv)
    place: dict[int, tuple[int, int]] = {}
    buffers: list[int] = []
    _zero_block(zero, place, buffers)
    for g in rest + scratch:
        place[g.id] = (len(buffers), 0)
        buffers.append(g.size)
    return assemble("reduce", lv, place, buffers, dynamic=True)


def plan_reuse(lv: Liveness) -> MemoryPlan:
    zero, rest, scratch = groups_by_kind(lv)
    place: dict[int, tuple[int, int]] = {}
    buffers: list[int] = []
    _zero_block(zero, place, buffers)
    free_at: dict[int, list[tuple[int, int]]] = {}  # size -> [(buffer, last step of occupant)]
    for g in sorted(rest, key=lambda g: (g.first, g.id)):
        slots = free_at.setdefault(g.size, [])
        for i, (b, last) in enumerate(slots):
            if last < g.first:
                slots[i] = (b, g.last)
                place[g.id] = (b, 0)
                break
        else:
            place[g.id] = (len(buffers), 0)
            slots.append((len(buffers), g.last))
            buffers.append(g.size)
    _workspace(scratch, place, buffers)
    return assemble("reuse", lv, place, buffers)


def greedy_offsets(
    groups: Iterable[Group], fixed: list[tuple[int, int, int, int]], key: Callable[[Group], Any],
) -> tuple[dict[int, int], int]:
    """Offsets for ``groups`` by best-fit gap among time-overlapping placements, in ``key`` order.

    ``fixed`` holds (offset, size, first, last) placements made beforehand.
    """
    placed = list(fixed)
    offsets: dict[int, int] = {}
    for g in sorted(groups, key=key):
        overlap = sorted((o, s) for o, s, f, l in placed if f <= g.last and g.first <= l)
        best, best_gap, prev_end = -1, None, 0
        for o, s in overlap:
            gap = o - prev_end
            if gap >= g.size and (best_gap is None or gap < best_gap):
                best, best_gap = prev_end, gap
            prev_end = max(prev_end, o + s)
        offset = best if best >= 0 else prev_end
        offsets[g.id] = offset
        placed.append((offset, g.size, g.first, g.last))
    total = max((o + s for o, s, _, _ in placed), default=0)
    return offsets, total


ORDERINGS: dict[str, Callable[[Group], Any]] = {
    "size": lambda g: (-g.size, g.first, g.id),
    "size_then_long_life": lambda g: (-g.size, -(g.last - g.first), g.id),
    "area": lambda g: (-g.size * (g.last - g.first + 1), g.id),
    # Power-of-two size classes, then time: close sizes placed in schedule order pack tighter.
    "size_class_then_time": lambda g: (-g.size.bit_length(), g.first, g.id),
    "size_class_then_long_life": lambda g: (-g.size.bit_length(), -(g.last - g.first), g.id),
}
SEARCH_BUDGET = 2_000_000  # pairwise checks allowed for the seeded random search


def best_offsets(groups: list[Group], fixed: list[tuple[int, int, int, int]], bound: int) -> tuple[dict[int, int], int]:
    """Best of the fixed orderings; then, while above ``bound``, seeded random size perturbations.

    Seeded, so the same graph always gets the same plan.
    """
    best: tuple[int, dict[int, int]] | None = None
    for key in ORDERINGS.values():
        offsets, total = greedy_offsets(groups, fixed, key)
        if best is None or total < best[0]:
            best = (total, offsets)
    assert best is not None
    tries = min(32, SEARCH_BUDGET // max(1, len(groups)) ** 2)
    rng = random.Random(len(groups))
    for _ in range(tries):
        if best[0] <= bound:
            break
        noise = {g.id: 1 + 0.5 * rng.random() for g in groups}
        offsets, total = greedy_offsets(groups, fixed, lambda g: (-g.size * noise[g.id], g.id))
        if total < best[0]:
            best = (total, offsets)
    return best[1], best[0]


def plan_arena(lv: Liveness) -> MemoryPlan:
    zero, rest, scratch = groups_by_kind(lv)
    fixed: list[tuple[int, int, int, int]] = []
    head: dict[int, tuple[int, int]] = {}
    off = 0
    for g in zero:  # side by side at the arena head: one fill zeroes them all
        head[g.id] = (0, off)
        fixed.append((off, g.size, g.first, g.last))
        off += g.size
    offsets, total = best_offsets(rest + scratch, fixed, lv.lower_bound())
    place = dict(head)
    place.update({gid: (0, o) for gid, o in offsets.items()})
    return assemble("arena", lv, place, [aligned(max(total, off))], arena=True)


PLANNERS: dict[str, Callable[[Liveness], MemoryPlan]] = {
    "default": plan_default,
    "reduce": plan_reduce,
    "reuse": plan_reuse,
    "arena": plan_arena,
}
