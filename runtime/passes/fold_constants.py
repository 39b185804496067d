"""Constant folding: evaluate every node computable at compile time.

Two phases:
1. Nodes whose inputs are all constants, level by level; the nodes of one level are
   independent and are evaluated in parallel on ``ctx.pool`` (``compile_threads``). This is
   where the heavy folding is (the light zoo's ConstantOfShape weights, their Unsqueezes).
2. One pass in schedule order with shapes propagated: a node whose inputs are known (a
   constant, or derived from static shapes: Shape -> Gather -> Concat -> Reshape chains)
   is evaluated on the spot, so a chain that depends on an earlier chain folds in the same
   pass.
"""

from __future__ import annotations

import numpy as np

from ..errors import Error
from ..ir import Graph, Node, TensorInfo
from ..ops.registry import Kernel, evaluate, prepare
from .base import PassContext

Job = tuple[Node, Kernel, list[np.ndarray | None]]


def _run(job: Job) -> list[np.ndarray]:
    node, kernel, values = job
    return evaluate(kernel, values, node)


def _store(node: Node, values: list[np.ndarray], constants: dict[str, np.ndarray],
           infos: dict[str, TensorInfo] | None = None) -> None:
    for name, value in zip(node.outputs, values):
        if name:
            # np.require, not ascontiguousarray: that would turn 0-d constants into shape (1,).
            constants[name] = np.require(value, requirements="C")
            if infos is not None:
                infos[name] = TensorInfo.of(constants[name])


def _constant_levels(graph: Graph, constants: dict[str, np.ndarray], ctx: PassContext, folded: set[str]) -> None:
    """Phase 1: all-constant nodes, one level at a time, each level on the pool."""
    pending = [n for n in graph.nodes if n.inputs]
    while pending:
        level: list[Node] = []
        rest: list[Node] = []
        for node in pending:
            (level if all(not x or x in constants for x in node.inputs) else rest).append(node)
        jobs: list[Job] = []
        for node in level:
            values = [constants[x] if x else None for x in node.inputs]
            try:
                kernel = prepare(node, [None if v is None else TensorInfo.of(v) for v in values], graph.opset)
            except Error:
                continue  # phase 2 and the planner report real errors with full context
            jobs.append((node, kernel, values))
        if not jobs:
            return
        results = list(ctx.pool.map(_run, jobs)) if ctx.pool is not None and len(jobs) > 1 else [_run(j) for j in jobs]
        for (node, _, _), outputs in zip(jobs, results):
            _store(node, outputs, constants)
            folded.add(node.name)
        pending = rest


def fold_constants(graph: Graph, ctx: PassContext) -> Graph:
    """Replace every node computable at compile time by constants."""
    constants = dict(graph.constants)
    folded: set[str] = set()
    _constant_levels(graph, constants, ctx, folded)
    infos: dict[str, TensorInfo] = {k: TensorInfo.of(v) for k, v in constants.items()}
    for name, given in ctx.input_infos.items():
        infos.setdefault(name, given.without_value())
    for node in graph.nodes:
        if node.name in folded:
            continue
        ins: list[TensorInfo | None] = []
        for x in node.inputs:
            info = infos.get(x) if x else None
            if x and (info is None or not info.static):
                break
            ins.append(info)
        else:
            try:
                kernel = prepare(node, ins, graph.opset)
            except Error:
                continue  # the planner reports real errors with full context
            outs_known = all(o.value is not None for o in kernel.outputs[: len(node.outputs)])
            if all(i is None or i.value is not None for i in ins) or outs_known:
                _store(node, _run((node, kernel, [None if i is None else i.value for i in ins])), constants, infos)
                folded.add(node.name)
                continue
            for name, out in zip(node.outputs, kernel.outputs):
                if name:
                    infos[name] = out.without_value()
    if not folded:
        return graph
    ctx.count("folded_nodes", len(folded))
    return graph.replace(nodes=[n for n in graph.nodes if n.name not in folded], constants=constants)
