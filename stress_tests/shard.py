"""``--shard K/N``: one of N deterministic, cost-balanced parts of a cell list, for any CI's parallel jobs.

The split depends only on the cells themselves, never on the machine, the clock or the order in
which they were listed: cells are sorted by expected cost (largest first; ties by cell id, then by
occurrence for ``--repeat`` copies) and each goes to the shard with the least cost so far (the
lowest index on a tie). That is the longest-processing-time rule: every shard ends within one
cell's cost of every other. Each shard keeps its cells in the order the list had them.

The same cell list must be given to every job: name the allocators (``--allocators``) rather than
let each machine discover its own. ``baseline merge`` and ``report`` take the shards' results files
and combine them.

Expected cost is in rough seconds: a child's start (interpreter, imports, model read) plus, per
iteration, the pipeline's inferences and compiles times the model's measured cost of each. The
figures are coarse on purpose (the builtin runtime's; other runtimes scale them alike): balance
needs the ratios, not the seconds, and a cost that changes only moves cells between shards.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .spec import CellSpec, SpecError

#: (seconds per inference, seconds per compile) of each zoo model, builtin runtime on 2 cores.
MODEL_COST: dict[str, tuple[float, float]] = {
    "mlp": (0.0005, 0.003), "u2netp": (0.5, 0.4), "u2net": (3.0, 1.5), "mobilenetv2": (0.05, 0.1),
    "bert": (0.05, 0.15), "resnet18": (0.15, 0.15), "resnet50": (0.5, 0.4), "unet": (1.0, 0.3),
    "light:squeezenet": (0.02, 0.03), "light:resnet50": (0.5, 0.4), "light:vgg19": (2.0, 1.5),
}
UNKNOWN_MODEL = (0.2, 0.2)
#: (inferences, compiles) per iteration of each pipeline; ``threads``/``graphs`` multiply where marked.
PIPELINE_WORK: dict[str, tuple[float, float]] = {
    "reinfer": (1, 0), "recreate_request": (1, 0), "recompile": (1, 1), "recreate_core": (1, 1),
    "cached_recompile": (1, 0.3), "mode_switch": (4, 4), "multi_graph": (1, 1), "threads": (1, 0),
    "memcheck": (2, 1), "create_compiled_model": (0, 1), "recreate_compiled_model": (0, 1),
    "create_infer_request": (0, 1), "recreate_infer_request": (0.05, 0), "infer_request_inference": (1, 1),
    "reinfer_request_inference": (1, 0), "recreate_and_infer_in_thread": (1, 0), "inference_with_streams": (1, 1),
}
_PER_THREAD = frozenset({"threads", "inference_with_streams"})
START = 3.0  # seconds to start a child and get to its first stage
TARGET_ITERATION = 0.01  # seconds per iteration of a --target cell (a user's callable: unknown, assumed small)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> Shard(2, 4); raises SpecError for anything else."""
    k, slash, n = str(text).strip().partition("/")
    try:
        shard = Shard(int(k), int(n))
    except ValueError:
        raise SpecError(f"--shard takes K/N (e.g. 2/4), got {text!r}") from None
    if not slash or shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise SpecError(f"--shard {text}: K must be between 1 and N, and N at least 1")
    return shard


def expected_cost(spec: CellSpec) -> float:
    """A cell's expected duration in rough seconds (see the module docstring)."""
    if getattr(spec, "target", None):  # a user's callable: nothing known but its iterations
        return START + spec.total_iterations * TARGET_ITERATION
    infer_s, compile_s = MODEL_COST.get(spec.model, UNKNOWN_MODEL)
    size = dict(spec.model_options).get("size")
    if size is not None and spec.model.startswith("u2net"):  # inference scales with the pixels
        infer_s *= min(1.0, (float(size) / 320.0) ** 2)
    infers, compiles = PIPELINE_WORK.get(spec.pipeline, (1, 1))
    if spec.pipeline in _PER_THREAD:
        infers *= spec.threads
    if spec.pipeline == "multi_graph":
        infers, compiles = infers * spec.graphs, compiles * spec.graphs
    return START + spec.total_iterations * (infers * infer_s + compiles * compile_s)


T = TypeVar("T", bound=CellSpec)


def split(specs: Sequence[T], count: int) -> list[list[T]]:
    """All ``count`` shards of ``specs`` (each in the list's order); their union is ``specs``."""
    if count < 1:
        raise SpecError(f"a shard count must be at least 1, got {count}")
    seen: dict[str, int] = {}
    keyed = []
    for position, spec in enumerate(specs):
        full = json.dumps(spec.to_dict(), sort_keys=True)  # cells sharing an id still sort apart
        occurrence = seen.get(full, 0)  # --repeat copies are identical: the n-th copy is the tie-break
        seen[full] = occurrence + 1
        keyed.append((-expected_cost(spec), spec.id, full, occurrence, position))
    loads = [(0.0, i) for i in range(count)]  # a heap of (cost so far, shard index)
    owner = [0] * len(specs)
    for *_, position in sorted(keyed):
        load, index = heapq.heappop(loads)
        owner[position] = index
        heapq.heappush(loads, (load + expected_cost(specs[position]), index))
    return [[s for s, o in zip(specs, owner) if o == i] for i in range(count)]


def select(specs: Sequence[T], shard: Shard | None) -> list[T]:
    """The cells of ``shard`` (all of them for None)."""
    return list(specs) if shard is None else split(specs, shard.count)[shard.index - 1]


def describe(specs: Sequence[CellSpec], count: int) -> list[tuple[int, float]]:
    """(cells, expected seconds) per shard: what ``memgate matrix --shard`` prints before running."""
    return [(len(part), sum(map(expected_cost, part))) for part in split(specs, count)]
