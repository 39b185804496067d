"""Fuse elementwise activations into the producing Conv/Gemm/MatMul/Add/Sum, applied in place."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node
from ..ops import registry
from .base import PassContext

ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid")


def _spec(node: Node, graph: Graph) -> list[Any] | None:
    """[op, attrs] for the in-place activation, or None when it cannot be fused."""
    op = node.op_type
    if op == "Clip":
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
        if graph.opset >= 11:
            bounds: list[float | None] = []
            for idx in (1, 2):
                name = node.inputs[idx] if len(node.inputs) > idx else ""
                if not name:
                    bounds.append(None)
                elif name in graph.constants:
                    bounds.append(float(np.asarray(graph.constants[name]).reshape(-1)[0]))
                else:
                    return None
            lo, hi = bounds
        elif graph.opset >= 6:
            lo = -3.4028234663852886e38 if lo is None else lo
            hi = 3.4028234663852886e38 if hi is None else hi
        return [op, {"min": lo, "max": hi}]
    if op == "LeakyRelu":
        return [op, {"alpha": float(node.attrs.get("alpha", 0.01))}]
    if op == "HardSigmoid":
        return [op, {"alpha": float(node.attrs.get("alpha", 0.2)), "beta": float(node.attrs.get("beta", 0.5))}]
    return [op, {}]


def fuse_activation(graph: Graph, ctx: PassContext) -> Graph:
    """Attach each activation to its producer when the producer's output has no other reader."""
    consumers = graph.consumers()
    producer = graph.producers()
    visible = set(graph.output_names) | ctx.protected
    fused: dict[str, Node] = {}
    dropped: set[str] = set()
    for act in graph.nodes:
        if act.op_type not in ACTIVATIONS or not act.inputs:
            continue
        src = producer.get(act.inputs[0])
        if src is None or src.name in fused or src.activation is not None:
            continue
        versions = registry.REGISTRY.get(src.op_type, [])
        if not any(v.fusable for v in versions) or src.domain not in ("", "ai.onnx"):
            continue
        mid = src.outputs[0]
        if mid in visible or len(consumers.get(mid, [])) != 1 or len([o for o in src.outputs if o]) != 1:
            continue
        spec = _spec(act, graph)
        if spec is None:
            continue
        fused[src.name] = src.replace(outputs=[act.outputs[0]], activation=spec)
        dropped.add(act.name)
    if not fused:
        return graph
    ctx.count("fused_activations", len(dropped))
    nodes = [fused.get(n.name, n) for n in graph.nodes if n.name not in dropped]
    return graph.replace(nodes=nodes)
