"""Graph -> Graph rewrites, run in a fixed order; each can be switched off by name.

Switch passes off with ``compile_model(..., disable_passes={"fuse_activation"})`` or
the ``MEMGATE_DISABLE_PASSES`` environment variable (comma-separated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from .. import flags
from ..errors import ConfigError
from ..ir import Graph
from .base import PassContext
from .dead_code import dead_code
from .fold_affine import fold_affine
from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fuse_activation import fuse_activation
from .remove_identity import remove_identity
from .schedule import schedule

Pass = Callable[[Graph, PassContext], Graph]

PASSES: dict[str, Pass] = {
    "remove_identity": remove_identity,
    "fold_constants": fold_constants,
    "fold_batchnorm": fold_batchnorm,
    "fold_affine": fold_affine,
    "fuse_activation": fuse_activation,
    "dead_code": dead_code,
}


def run_passes(graph: Graph, ctx: PassContext, disable: Iterable[str] = ()) -> Graph:
    """Schedule, run every enabled pass, schedule again. ``schedule`` may be disabled too."""
    off = set(disable) | set(flags.DISABLE_PASSES)
    unknown = off - set(PASSES) - {"schedule"}
    if unknown:
        raise ConfigError(f"unknown pass name(s) {sorted(unknown)}; known: {sorted(PASSES) + ['schedule']}")
    if "schedule" not in off:
        graph = schedule(graph)
    for name, fn in PASSES.items():
        if name in off:
            continue
        start = time.perf_counter()
        before = len(graph.nodes)
        graph = fn(graph, ctx)
        flags.debug(1, f"pass {name}: {before} -> {len(graph.nodes)} nodes in {time.perf_counter() - start:.3f}s")
    if "schedule" not in off:
        graph = schedule(graph)
    return graph


__all__ = ["PASSES", "PassContext", "run_passes", "schedule"]
