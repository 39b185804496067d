"""Topological schedule: Kahn's algorithm, stable with respect to the model's own order."""

from __future__ import annotations

import heapq

from ..errors import GraphError
from ..ir import Graph, describe


def schedule(graph: Graph) -> Graph:
    """Nodes in an order where every input is defined before use; a cycle is an error."""
    producer: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for out in n.outputs:
            if out:
                producer[out] = i
    deps: list[set[int]] = []
    users: list[list[int]] = [[] for _ in graph.nodes]
    for i, n in enumerate(graph.nodes):
        d = {producer[x] for x in n.inputs if x and x in producer}
        deps.append(d)
        for j in d:
            users[j].append(i)
    remaining = [len(d) for d in deps]
    ready = [i for i, r in enumerate(remaining) if r == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(graph.nodes):
        stuck = [graph.nodes[i].name for i, r in enumerate(remaining) if r > 0]
        raise GraphError(f"the graph has a cycle through node(s) {describe(stuck)}")
    if order == list(range(len(graph.nodes))):
        return graph
    return graph.replace(nodes=[graph.nodes[i] for i in order])
