"""Graph + concrete input shapes -> a flat, inspectable program of steps.

Every node is prepared once for the signature. Nodes whose inputs are all known
(constants, or values derived from static shapes) are evaluated here and vanish
from the schedule; view-like nodes (Reshape, Squeeze...) become aliases with no
step. What is left is the list of steps the memory planner and executor consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataDependentShapeError, InputError, ShapeError
from .ir import Graph, TensorInfo, shape_str
from .ops.elementwise import make_activation
from .ops.registry import Kernel, evaluate, prepare

Signature = tuple[tuple[str, str, tuple[int, ...], "bytes | None"], ...]


@dataclass
class Step:
    """One kernel call: its node, tensor names ('' = omitted input) and prepared kernel."""

    index: int
    node: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    kernel: Kernel

    def describe(self, infos: dict[str, TensorInfo]) -> dict[str, Any]:
        def t(name: str) -> dict[str, Any]:
            i = infos[name]
            return {"name": name, "dtype": i.dtype.name, "shape": list(i.shape), "nbytes": i.nbytes}

        return {
            "index": self.index, "node": self.node, "op_type": self.op_type,
            "inputs": [t(x) for x in self.inputs if x],
            "outputs": [t(x) for x in self.outputs if x],
            "scratch": [{"dtype": s.dtype.name, "shape": list(s.shape), "nbytes": s.nbytes}
                        for s in self.kernel.scratch],
            "inplace": self.kernel.inplace, "zero_init": list(self.kernel.zero_init),
        }


@dataclass
class Program:
    """The lowered graph for one input signature."""

    steps: list[Step]
    infos: dict[str, TensorInfo]  # every tensor, static shapes
    known: dict[str, np.ndarray]  # constants and plan-time values
    aliases: dict[str, str]  # view tensor -> tensor whose buffer it views
    inputs: list[str]
    outputs: list[str]
    signature: Signature = ()
    folded_at_plan: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def root(self, name: str) -> str:
        while name in self.aliases:
            name = self.aliases[name]
        return name


def signature_of(infos: dict[str, TensorInfo]) -> Signature:
    """Dtypes and shapes of the inputs, and the values of inputs planned per value."""
    return tuple((k, v.dtype.str, v.dims, None if v.value is None else v.value.tobytes())
                 for k, v in sorted(infos.items()))


def lower(graph: Graph, input_infos: dict[str, TensorInfo]) -> Program:
    """Prepare every node for these static input infos."""
    for name, info in input_infos.items():
        if not info.static:
            raise ShapeError(f"input '{name}' has non-static shape {shape_str(info.shape)}")
    known: dict[str, np.ndarray] = dict(graph.constants)
    infos: dict[str, TensorInfo] = {k: TensorInfo.of(v) for k, v in known.items()}
    for v in graph.inputs:
        if v.name not in input_infos:
            raise InputError(f"no shape for input '{v.name}'")
        info = input_infos[v.name]
        infos[v.name] = info  # a value here is a shape-defining input planned per value
        if info.value is not None:
            known[v.name] = info.value
    aliases: dict[str, str] = {}
    steps: list[Step] = []
    folded = 0
    for node in graph.nodes:
        ins: list[TensorInfo | None] = []
        for x in node.inputs:
            if not x:
                ins.append(None)
                continue
            if x not in infos:
                raise ShapeError(f"node '{node.name}' reads '{x}' before it is defined")
            ins.append(infos[x])
        try:
            kernel = prepare(node, ins, graph.opset, make_activation(node.activation))
        except DataDependentShapeError as e:
            e.node = node.name
            e.tensor = next((x for x, i in zip(node.inputs, ins) if i is not None and i is e.info), "")
            raise
        if all(i is None or i.value is not None for i in ins):
            values = evaluate(kernel, [None if i is None else i.value for i in ins], node)
            for name, value in zip(node.outputs, values):
                if name:
                    known[name] = value
                    infos[name] = TensorInfo.of(value)
            folded += 1
            continue
        needs_run = False
        for k, name in enumerate(node.outputs):
            if not name:
                continue
            out = kernel.outputs[k]
            if not out.static:
                raise ShapeError(f"node '{node.name}' output '{name}' has no static shape")
            if out.value is not None:
                known[name] = out.value
                infos[name] = TensorInfo.of(out.value)
            elif k in kernel.alias:
                src = node.inputs[kernel.alias[k]]
                if ins[kernel.alias[k]] is None or out.nbytes != infos[src].nbytes:
                    raise ShapeError(f"node '{node.name}': alias output '{name}' does not match its input size")
                aliases[name] = src
                infos[name] = out.without_value()
            else:
                infos[name] = out.without_value()
                needs_run = True
        if needs_run:
            if kernel.run is None:
                raise ShapeError(f"node '{node.name}' ({node.op_type}) has outputs but no run function")
            steps.append(Step(len(steps), node.name, node.op_type, list(node.inputs), list(node.outputs), kernel))
    for name in graph.output_names:
        if name not in infos:
            raise ShapeError(f"graph output '{name}' was never computed")
    return Program(
        steps=steps, infos=infos, known=known, aliases=aliases, inputs=graph.input_names,
        outputs=graph.output_names, signature=signature_of(input_infos), folded_at_plan=folded,
    )
