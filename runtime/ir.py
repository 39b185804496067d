"""The runtime's graph: values with dtype and shape, nodes, constants.

The frontend builds it from ONNX, passes rewrite it (each a pure ``Graph -> Graph``
function), the planner turns it into steps. Attributes hold plain Python values
and numpy arrays only, so a graph can be written to the cache as JSON plus raw
bytes without pickle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, Union  # noqa: UP035

import numpy as np

from .errors import ShapeError

Dim = Union[int, str, None]  # noqa: UP007  an int, a symbolic name, or unknown


def is_static(shape: tuple[Dim, ...]) -> TypeGuard[tuple[int, ...]]:
    """True when every dim is a concrete int (no symbolic name, no unknown)."""
    return all(isinstance(d, int) for d in shape)


@dataclass(frozen=True)
class TensorInfo:
    """Dtype and shape of one tensor; ``value`` is set when it is known at plan time."""

    dtype: np.dtype
    shape: tuple[Dim, ...]
    value: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def static(self) -> bool:
        return is_static(self.shape)

    @property
    def dims(self) -> tuple[int, ...]:
        """The shape as ints, for code that only ever sees static shapes (kernels, planner).

        Lowering rejects non-static shapes before any kernel is prepared, so the error is
        a guard against a caller that skipped it, not a path a model can reach.
        """
        shape = self.shape
        if not is_static(shape):
            raise ShapeError(f"shape {shape_str(shape)} is not static")
        return shape

    @property
    def size(self) -> int:
        shape = self.shape
        if not is_static(shape):
            raise ValueError(f"shape {shape} is not static")
        # math.prod, not np.prod: this runs for every view a dynamic ("reduce") plan binds per step,
        # and np.prod's Python-level reduction cost 2.3 ms of MobileNetV2's 18 ms there.
        return math.prod(shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @staticmethod
    def of(array: np.ndarray) -> TensorInfo:
        return TensorInfo(array.dtype, tuple(int(d) for d in array.shape), array)

    def without_value(self) -> TensorInfo:
        return TensorInfo(self.dtype, self.shape)


@dataclass
class Node:
    """One operator application. ``inputs`` uses '' for an omitted optional input."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""
    # Set by the activation-fusion pass: [op_type, {attr: value}] applied in place to output 0.
    activation: list[Any] | None = None

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)


@dataclass
class ValueInfo:
    name: str
    info: TensorInfo


@dataclass
class Graph:
    """A model after the frontend: everything passes and the planner need."""

    nodes: list[Node]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    constants: dict[str, np.ndarray]
    opset: int
    name: str = "graph"
    # Graph inputs that also carry an initializer (used when the feed omits them).
    defaults: dict[str, np.ndarray] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Graph:
        return dataclasses.replace(self, **changes)

    @property
    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.outputs]

    def producers(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        result: dict[str, list[Node]] = {}
        for n in self.nodes:
            for name in n.inputs:
                if name:
                    result.setdefault(name, []).append(n)
        return result

    def weights_bytes(self) -> int:
        return sum(int(a.nbytes) for a in self.constants.values())


def unique_name(base: str, taken: set[str]) -> str:
    """``base`` if free, else ``base_1``, ``base_2``...; the result is added to ``taken``."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def used_names(graph: Graph) -> set[str]:
    names: set[str] = set(graph.constants) | set(graph.input_names) | set(graph.output_names)
    for n in graph.nodes:
        names.update(n.inputs)
        names.update(n.outputs)
        names.add(n.name)
    names.discard("")
    return names


def shape_str(shape: Sequence[Dim]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def describe(names: Iterable[str], limit: int = 12) -> str:
    """A short, readable list of names for error messages."""
    items = sorted(names)
    text = ", ".join(f"'{n}'" for n in items[:limit])
    return text + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
