"""--shard K/N: shards are disjoint, cover every cell, are the same whatever the list order, and balanced."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stress_tests import gate
from stress_tests.cli import main
from stress_tests.results import read_results
from stress_tests.shard import Shard, expected_cost, parse_shard, select, split
from stress_tests.spec import CellSpec, SpecError

ALLOCATORS = ["glibc", "jemalloc", "tcmalloc", "mimalloc"]


def nightly() -> list[CellSpec]:
    """The full tier under every allocator and profile, twice: 1,296 cells with repeated ids (distinct objects)."""
    return [s.replace() for s in gate.specs(gate.gating_set(full=True), ALLOCATORS, ["default", "arena1", "trim"],
                                            repeat=2)]


def key(spec: CellSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def test_parse_shard() -> None:
    assert parse_shard("2/4") == Shard(2, 4) and str(parse_shard(" 1/1 ")) == "1/1"
    for bad in ("0/4", "5/4", "2", "a/b", "1/0", "-1/2", ""):
        with pytest.raises(SpecError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_are_disjoint_and_cover_every_cell_in_list_order(count: int) -> None:
    specs = nightly()
    parts = split(specs, count)
    assert len(parts) == count
    assert Counter(key(s) for p in parts for s in p) == Counter(key(s) for s in specs)
    position = {id(s): i for i, s in enumerate(specs)}
    owners = Counter(id(s) for p in parts for s in p)
    assert set(owners.values()) == {1}, "every cell object is in exactly one shard"
    for p in parts:
        assert [position[id(s)] for s in p] == sorted(position[id(s)] for s in p)
    assert select(specs, Shard(count, count)) == parts[-1] and select(specs, None) == specs


def test_the_split_does_not_depend_on_the_order_of_the_list() -> None:
    specs = nightly()
    shuffled = list(specs)
    random.Random(7).shuffle(shuffled)
    for count in (2, 5):
        a = [Counter(map(key, p)) for p in split(specs, count)]
        b = [Counter(map(key, p)) for p in split(shuffled, count)]
        assert a == b


def test_the_nightly_splits_evenly() -> None:
    specs = nightly()
    biggest = max(map(expected_cost, specs))
    for count in (2, 4, 8, 16):
        loads = [sum(map(expected_cost, p)) for p in split(specs, count)]
        assert max(loads) - min(loads) <= biggest


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["mlp", "u2netp", "bert", "resnet50", "light:vgg19", "mine.onnx"]),
                          st.sampled_from(["reinfer", "recompile", "memcheck", "threads", "mode_switch"]),
                          st.integers(1, 3000)), min_size=0, max_size=60),
       st.integers(1, 9))
def test_every_shard_ends_within_one_cell_of_every_other(cells: list[tuple[str, str, int]], count: int) -> None:
    specs = [CellSpec(model=m, pipeline=p, iterations=n) for m, p, n in cells]
    parts = split(specs, count)
    loads = [sum(map(expected_cost, p)) for p in parts]
    assert sum(len(p) for p in parts) == len(specs)
    if specs:
        assert max(loads) - min(loads) <= max(map(expected_cost, specs)) + 1e-9


def test_expected_cost_orders_what_takes_longer() -> None:
    small = CellSpec(pipeline="reinfer", model="mlp", iterations=100)
    assert expected_cost(small) < expected_cost(small.replace(iterations=1000))
    assert expected_cost(small) < expected_cost(small.replace(pipeline="recompile"))
    assert expected_cost(small) < expected_cost(small.replace(model="u2netp"))
    sized = CellSpec(pipeline="reinfer", model="u2netp", model_options=(("size", "64"),))
    assert expected_cost(sized) < expected_cost(sized.replace(model_options=()))


@pytest.mark.stress
def test_matrix_shards_report_and_merge_combine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["matrix", "--model", "mlp", "--pipeline", "reinfer,recreate_request", "--iterations", "3",
            "--workdir", str(tmp_path / "work")]
    outputs = []
    for k in (1, 2):
        out = tmp_path / f"shard-{k}.json"
        assert main([*base, "--shard", f"{k}/2", "--json", str(out)]) == 0
        outputs.append(out)
    assert "shard 2/2: 1 of 2 cells" in capsys.readouterr().err
    cells = [c.spec.pipeline for p in outputs for c in read_results(p).cells]
    assert sorted(cells) == ["recreate_request", "reinfer"]
    assert main([*base, "--shard", "3/3"]) == 0  # more shards than cells: an empty shard is not an error
    assert "shard 3/3 is empty" in capsys.readouterr().err
    assert main(["report", *map(str, outputs), "--out", str(tmp_path / "report")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "reinfer" in summary and "recreate_request" in summary
    assert main(["baseline", "merge", *map(str, outputs), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads(next((tmp_path / "merged").glob("*.json")).read_text())
    assert {e.split("/")[0] for e in merged["entries"]} == {"reinfer", "recreate_request"}


def test_a_bad_shard_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["matrix", "--shard", "5/4"])
    assert e.value.code == 2 and "K must be between 1 and N" in capsys.readouterr().err
