"""The planners as pure functions: synthetic lifetimes in, placements out, checked for overlap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.memory.liveness import ALIGN, Group, Liveness, peak_live
from runtime.memory.planners import PLANNERS, greedy_offsets


@st.composite
def lifetimes(draw: st.DrawFn) -> Liveness:
    n_steps = draw(st.integers(1, 30))
    count = draw(st.integers(1, 40))
    groups = []
    per_step: dict[int, int] = {}
    for i in range(count):
        first = draw(st.integers(-1, n_steps - 1))
        last = draw(st.integers(max(first, 0), n_steps))
        nbytes = draw(st.sampled_from([4, 64, 100, 4096, 12288, 65536, 1 << 20]))
        zero = draw(st.booleans()) and first == -1
        scratch = None
        if draw(st.integers(0, 5)) == 0 and first >= 0:
            scratch = (first, per_step.get(first, 0))
            per_step[first] = scratch[1] + 1
            last = first
        groups.append(Group(i, [f"t{i}"] if scratch is None else [], nbytes, first, last, scratch=scratch, zero=zero))
    group_of = {f"t{g.id}": g.id for g in groups if g.scratch is None}
    return Liveness(groups, group_of, n_steps)


def _live_together(a: Group, b: Group) -> bool:
    return a.first <= b.last and b.first <= a.last


@settings(max_examples=150, deadline=None)
@given(lifetimes())
def test_arena_never_overlaps_live_tensors(lv: Liveness) -> None:
    plan = PLANNERS["arena"](lv)
    assert len(plan.buffers) == 1
    spans = {}
    for g in lv.groups:
        if g.scratch is not None:
            step, j = g.scratch
            b, off = plan.scratch[step][j]
        else:
            b, off = plan.place[g.tensors[0]]
        assert b == 0 and off % ALIGN == 0
        assert off + g.nbytes <= plan.buffers[0]
        spans[g.id] = (off, off + g.size)
    for a in lv.groups:
        for b in lv.groups:
            if a.id < b.id and _live_together(a, b):
                (a0, a1), (b0, b1) = spans[a.id], spans[b.id]
                assert a1 <= b0 or b1 <= a0, f"groups {a.id} and {b.id} overlap while both live"
    assert plan.buffers[0] >= lv.lower_bound()


@settings(max_examples=150, deadline=None)
@given(lifetimes())
def test_reuse_shares_only_equal_sizes_with_disjoint_lifetimes(lv: Liveness) -> None:
    plan = PLANNERS["reuse"](lv)
    owners: dict[int, list[Group]] = {}
    for g in lv.groups:
        loc = plan.scratch[g.scratch[0]][g.scratch[1]] if g.scratch else plan.place[g.tensors[0]]
        owners.setdefault(loc[0], []).append(g)
    for buf, members in owners.items():
        if all(m.zero and m.first < 0 for m in members):
            continue  # the memset block
        if all(m.scratch is not None for m in members):
            for a in members:  # the scratch workspace: only one step's scratch at a time
                for b in members:
                    if a.id < b.id and a.first == b.first:
                        pa, pb = plan.scratch[a.first][a.scratch[1]][1], plan.scratch[b.first][b.scratch[1]][1]
                        assert pa + a.size <= pb or pb + b.size <= pa
            continue
        assert len({m.size for m in members}) == 1, "a reuse buffer serves one size only"
        assert plan.buffers[buf] == members[0].size
        for a in members:
            for b in members:
                if a.id < b.id:
                    assert not _live_together(a, b)


@settings(max_examples=100, deadline=None)
@given(lifetimes())
def test_reduce_allocates_each_buffer_for_its_lifetime(lv: Liveness) -> None:
    plan = PLANNERS["reduce"](lv)
    assert plan.dynamic
    allocated = set(plan.alloc_start) | {b for step in plan.alloc_before for b in step}
    assert allocated == set(range(len(plan.buffers)))
    # The planned dynamic peak can never be below the lower bound, nor above default's total.
    assert lv.lower_bound() <= plan.intermediate_bytes <= sum(plan.buffers)
    for b in {b for step in plan.free_after for b in step}:
        assert b in allocated


def test_zero_groups_under_policy_0_are_one_contiguous_fill() -> None:
    groups = [
        Group(0, ["a"], 100, -1, 5, zero=True),
        Group(1, ["b"], 4096, -1, 5, zero=True),
        Group(2, ["c"], 64, 0, 1),
    ]
    lv = Liveness(groups, {"a": 0, "b": 1, "c": 2}, 5)
    for mode in PLANNERS:
        plan = PLANNERS[mode](lv)
        assert len(plan.zero_start) == 1, (mode, plan.zero_start)
        _, off, nbytes = plan.zero_start[0]
        assert nbytes >= 100 + 4096


def test_greedy_by_size_reaches_lower_bound_on_a_chain() -> None:
    # A chain a->b->c->d where each tensor dies after the next is made: two live at a time.
    sizes = [4096, 8192, 4096, 8192]
    groups = [Group(i, [f"t{i}"], s, i, i + 1) for i, s in enumerate(sizes)]
    offsets, total = greedy_offsets(groups, [], key=lambda g: (-g.size, g.first))
    assert total == peak_live(groups, 5) == 8192 + 8192 or total <= 16384
    assert len(offsets) == 4


def test_default_plan_keeps_every_tensor_in_its_own_buffer() -> None:
    groups = [Group(i, [f"t{i}"], 1000 * (i + 1), i, i + 1) for i in range(4)]
    groups.append(Group(4, [], 5000, 1, 1, scratch=(1, 0)))
    groups.append(Group(5, [], 7000, 2, 2, scratch=(2, 0)))
    plan = PLANNERS["default"](Liveness(groups, {f"t{i}": i for i in range(4)}, 4))
    assert len({plan.place[f"t{i}"][0] for i in range(4)}) == 4
    # Scratch shares one workspace sized to the largest step.
    assert plan.scratch[1][0][0] == plan.scratch[2][0][0]
    assert plan.buffers[plan.scratch[1][0][0]] == 7040
