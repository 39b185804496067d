"""Constant folding: evaluate nodes whose inputs are all known, in waves on the compile pool.

Known means an initializer, a Constant, or a value derived from static shapes
(Shape/Size of a tensor whose shape is known), so Shape -> Gather -> Concat ->
Reshape chains fold when the input shapes are static. Independent constants of one
wave are evaluated in parallel on ``ctx.pool`` (``compile_threads``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import Error
from ..ir import Graph, Node, TensorInfo
from ..ops.registry import Kernel, evaluate, prepare
from .base import PassContext


def _input_infos(node: Node, infos: dict[str, TensorInfo]) -> list[TensorInfo | None] | None:
    result: list[TensorInfo | None] = []
    for name in node.inputs:
        if not name:
            result.append(None)
        elif name in infos and infos[name].static:
            result.append(infos[name])
        else:
            return None
    return result


def _run(job: tuple[Node, Kernel, list[np.ndarray | None]]) -> list[np.ndarray]:
    node, kernel, values = job
    return evaluate(kernel, values, node)


def fold_constants(graph: Graph, ctx: PassContext) -> Graph:
    """Replace every node computable at compile time by constants."""
    constants = dict(graph.constants)
    folded: set[str] = set()
    while True:
        infos: dict[str, TensorInfo] = {k: TensorInfo.of(v) for k, v in constants.items()}
        for name, info in ctx.input_infos.items():
            if name not in infos:
                infos[name] = info.without_value()
        wave: list[tuple[Node, Kernel, list[np.ndarray | None]]] = []
        for node in graph.nodes:
            if node.name in folded:
                continue
            ins = _input_infos(node, infos)
            if ins is None:
                continue
            try:
                kernel = prepare(node, ins, graph.opset)
            except Error:
                continue  # the planner reports real errors with full context
            all_known = all(i is None or i.value is not None for i in ins)
            outs_known = all(o.value is not None for o in kernel.outputs[: len(node.outputs)])
            if all_known or outs_known:
                wave.append((node, kernel, [None if i is None else i.value for i in ins]))
                continue
            for name, out in zip(node.outputs, kernel.outputs):
                if name:
                    infos[name] = out.without_value()
        if not wave:
            break
        results: Iterable[list[np.ndarray]]
        if ctx.pool is not None and len(wave) > 1:
            results = list(ctx.pool.map(_run, wave))
        else:
            results = [_run(job) for job in wave]
        for (node, _, _), values in zip(wave, results):
            folded.add(node.name)
            for name, value in zip(node.outputs, values):
                if name:
                    constants[name] = np.require(value, requirements="C")  # keeps 0-d scalars 0-d
        ctx.count("folded_nodes", len(wave))
    if not folded:
        return graph
    nodes = [n for n in graph.nodes if n.name not in folded]
    return graph.replace(nodes=nodes, constants=constants)
