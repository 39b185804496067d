"""The memleaks cases: every iterating pipeline over a representative set of models and memory modes."""

from __future__ import annotations

from dataclasses import dataclass

from stress_tests.adapters import MODES
from stress_tests.pipelines import CASES
from stress_tests.spec import CellSpec

#: Pipelines with a per-iteration body (memcheck measures stages once and has no leak verdict).
ITERATING = tuple(name for name, case in CASES.items() if case.iterates)


@dataclass(frozen=True)
class Case:
    pipeline: str
    model: str
    mode: str = "default"
    iterations: int = 60
    options: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        opts = "[" + ",".join(f"{k}={v}" for k, v in self.options) + "]" if self.options else ""
        return f"{self.pipeline}-{self.model}{opts}-{self.mode}"

    def spec(self, allocator: str = "glibc", tunables: tuple[tuple[str, str], ...] = (),
             trim: bool = False) -> CellSpec:
        return CellSpec(pipeline=self.pipeline, model=self.model, model_options=self.options, mode=self.mode,
                        iterations=self.iterations, allocator=allocator, tunables=tunables, trim=trim,
                        timeout=900.0)


SMALL = (("size", "32"),)
#: Quick tier: every pipeline on the tiny mlp; each memory mode on a small u2netp (minutes in total).
#: u2netp runs 80 iterations: under glibc arena_max=1 its RSS steps and creeps for ~27 of them, and
#: 30 iterations ended inside that warm-up, which the analysis read as a leak.
QUICK = (
    *(Case(p, "mlp") for p in ITERATING),
    *(Case("reinfer", "u2netp", mode, 80, SMALL) for mode in MODES),
    *(Case("recreate_request", "u2netp", mode, 80, SMALL) for mode in ("default", "arena")),
)
#: Full tier (nightly): thousands of iterations, every pipeline x mode on real architectures.
FULL = (
    *(Case(p, "mlp", iterations=3000) for p in ITERATING),
    *(Case(p, "u2netp", mode, 1000, (("size", "64"),)) for p in ITERATING for mode in MODES
      if p not in ("mode_switch", "multi_graph") or mode == "default"),
    *(Case(p, m, mode, 500) for p in ("reinfer", "recreate_request", "threads") for m in ("mobilenetv2", "bert")
      for mode in ("default", "arena")),
    *(Case(p, "resnet18", "default", 300) for p in ("recompile", "recreate_core", "cached_recompile")),
)
