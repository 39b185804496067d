"""Liveness over the schedule and one planner per memory mode."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigError
from ..lowering import Program
from .liveness import ALIGN, Group, Liveness, aligned, analyze
from .plan import MemoryPlan
from .planners import PLANNERS

MODES = tuple(PLANNERS)


def plan_memory(program: Program, mode: str, *, keep: Iterable[str] = (), atomic_clean_policy: int = 0) -> MemoryPlan:
    """Plan ``program`` under ``mode``; in-place execution in every mode but ``"default"``."""
    if mode not in PLANNERS:
        raise ConfigError(f"unknown memory_mode {mode!r}; choose one of {list(PLANNERS)}")
    lv = analyze(program, inplace=mode != "default", keep=keep, atomic_clean_policy=atomic_clean_policy)
    return PLANNERS[mode](lv)


__all__ = ["ALIGN", "MODES", "Group", "Liveness", "MemoryPlan", "aligned", "analyze", "plan_memory"]
