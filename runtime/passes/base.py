"""What every pass may know besides the graph."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

from ..ir import TensorInfo


@dataclass
class PassContext:
    """Names passes must not rename or remove, input infos, and the compile thread pool."""

    protected: frozenset[str] = frozenset()  # kept intermediates (compile_model(keep=...))
    input_infos: dict[str, TensorInfo] = field(default_factory=dict)
    pool: Executor | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n
