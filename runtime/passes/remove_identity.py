"""Identity and inference-mode Dropout removal: consumers read the input directly."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .base import PassContext


def _removable(node: Node, graph: Graph, ctx: PassContext) -> bool:
    if node.op_type == "Identity":
        return True
    if node.op_type != "Dropout":
        return False
    if len(node.outputs) > 1 and node.outputs[1]:
        return False  # the mask is used
    if len(node.inputs) > 2 and node.inputs[2]:
        mode = graph.constants.get(node.inputs[2])
        if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
            return False  # training mode or unknown: keep the node
    return True


def remove_identity(graph: Graph, ctx: PassContext) -> Graph:
    """Drop Identity/Dropout nodes, renaming so that graph outputs keep their names."""
    outputs = set(graph.output_names)
    rename: dict[str, str] = {}
    producer = graph.producers()
    consumers = graph.consumers()
    keep_nodes: list[Node] = []
    renamed_producers: dict[str, str] = {}  # producer output -> graph output name
    for node in graph.nodes:
        if not _removable(node, graph, ctx) or not node.inputs or not node.inputs[0]:
            keep_nodes.append(node)
            continue
        src, dst = node.inputs[0], node.outputs[0]
        src = rename.get(src, src)
        if dst in outputs or dst in ctx.protected:
            # The identity's name must survive: rename the producer's output instead, when
            # the source is an intermediate only this node reads.
            p = producer.get(src)
            if (p is not None and src not in outputs and src not in ctx.protected
                    and len(consumers.get(src, [])) == 1 and src not in renamed_producers):
                renamed_producers[src] = dst
                continue
            keep_nodes.append(node)
            continue
        rename[dst] = src
    if not rename and not renamed_producers:
        return graph
    new_nodes = []
    for node in keep_nodes:
        ins = [rename.get(x, x) for x in node.inputs]
        outs = [renamed_producers.get(x, x) for x in node.outputs]
        changed = ins != node.inputs or outs != node.outputs
        new_nodes.append(node.replace(inputs=ins, outputs=outs) if changed else node)
    # Consumers of a renamed producer output read the new name.
    if renamed_producers:
        new_nodes = [n.replace(inputs=[renamed_producers.get(x, x) for x in n.inputs]) for n in new_nodes]
    return graph.replace(nodes=new_nodes)
