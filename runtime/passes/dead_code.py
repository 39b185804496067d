"""Dead-node elimination: keep only what graph outputs (and kept tensors) depend on."""

from __future__ import annotations

from ..ir import Graph
from .base import PassContext


def dead_code(graph: Graph, ctx: PassContext) -> Graph:
    """Remove nodes and constants no graph output or protected tensor needs."""
    needed = set(graph.output_names) | set(ctx.protected)
    live_nodes = []
    for node in reversed(graph.nodes):
        if any(o in needed for o in node.outputs if o):
            live_nodes.append(node)
            needed.update(x for x in node.inputs if x)
    live_nodes.reverse()
    constants = {k: v for k, v in graph.constants.items() if k in needed}
    removed = len(graph.nodes) - len(live_nodes)
    if not removed and len(constants) == len(graph.constants):
        return graph
    ctx.count("dead_nodes", removed)
    return graph.replace(nodes=live_nodes, constants=constants)
