"""Sizes, and the spec/result dataclasses that travel as JSON."""

from __future__ import annotations

import json
import math

import pytest

from stress_tests.spec import Applied, CellResult, CellSpec, CoreOptions, SpecError, StageMemory, finite
from stress_tests.units import format_size, parse_size


@pytest.mark.parametrize("text, expected", [
    ("4096", 4096), ("64KiB", 65536), ("1.5 MiB", 1572864), ("2M", 2 << 20), ("1kb", 1000), ("0x10", 16), (7, 7),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "KiB", "12 parsecs", "-3"])
def test_parse_size_rejects_with_examples(bad: str) -> None:
    with pytest.raises(ValueError, match="examples"):
        parse_size(bad)


def test_format_size() -> None:
    assert format_size(1536) == "1.5 KiB"
    assert format_size(-2 << 20, signed=True) == "-2.0 MiB"
    assert format_size(12, signed=True) == "+12 B"
    assert format_size(None) == "n/a"


def test_spec_round_trip_and_id() -> None:
    spec = CellSpec(pipeline="recompile", model="u2netp", model_options=(("size", "64"),), mode="arena",
                    allocator="jemalloc", tunables=(("arena_max", "1"),), iterations=30, warmup=5,
                    core=CoreOptions(static_memory_policy=2), inject_leak_bytes=4096)
    again = CellSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert spec.id == "recompile/u2netp[size=64]/arena/builtin/jemalloc/arena_max=1/leak=4096"
    assert spec.total_iterations == 35


def test_spec_rejects_unknown_fields_and_bad_values() -> None:
    with pytest.raises(SpecError, match="unknown field"):
        CellSpec.from_dict({"pipeline": "reinfer", "iterationz": 3})
    with pytest.raises(SpecError, match="iterations"):
        CellSpec(iterations=0)


def test_result_round_trip() -> None:
    result = CellResult(CellSpec(), "crashed", reason="killed by SIGSEGV", series={"VmRSS": [1, None, 3]},
                        latency=[0.1, 0.2], stages=[StageMemory("compile", 1, 2, 1, 2, 5, "clear_refs", 0.5)],
                        applied=Applied(verified=True, evidence=["x"]), signal="SIGSEGV", exit_code=-11)
    again = CellResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.stages[0].delta == 1 and again.stages[0].peak_delta == 4
    assert again.bad and again.iterations_done == 3


def test_unknown_status_is_refused() -> None:
    with pytest.raises(SpecError, match="status"):
        CellResult(CellSpec(), "fine")


def test_finite_replaces_nan_and_inf() -> None:
    assert finite({"a": [math.nan, 1.0, math.inf], "b": (2, -math.inf)}) == {"a": [None, 1.0, None], "b": [2, None]}
