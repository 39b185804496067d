"""Conv + BatchNormalization folding: scale the filters and shift the bias offline."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, unique_name, used_names
from .base import PassContext


def _bn_params(bn: Node, graph: Graph) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) of an inference-mode BatchNormalization with constant parameters."""
    if len(bn.inputs) < 5 or any(x not in graph.constants for x in bn.inputs[1:5]):
        return None
    if len([o for o in bn.outputs if o]) != 1 or int(bn.attrs.get("spatial", 1)) != 1:
        return None
    if int(bn.attrs.get("training_mode", 0)):
        return None
    gamma, beta, mean, var = (graph.constants[x].astype(np.float64) for x in bn.inputs[1:5])
    eps = float(bn.attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def fold_batchnorm(graph: Graph, ctx: PassContext) -> Graph:
    """Fold every BatchNormalization that is the only reader of a Conv's output."""
    consumers = graph.consumers()
    outputs = set(graph.output_names) | ctx.protected
    producer = graph.producers()
    constants = dict(graph.constants)
    taken = used_names(graph)
    replaced: dict[str, Node] = {}  # conv name -> new conv
    dropped: set[str] = set()
    for bn in graph.nodes:
        if bn.op_type != "BatchNormalization" or not bn.inputs:
            continue
        conv = producer.get(bn.inputs[0])
        if conv is None or conv.op_type != "Conv" or conv.activation is not None or conv.name in replaced:
            continue
        mid = conv.outputs[0]
        if mid in outputs or len(consumers.get(mid, [])) != 1:
            continue
        if len(conv.inputs) < 2 or conv.inputs[1] not in constants:
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] and conv.inputs[2] not in constants:
            continue
        params = _bn_params(bn, graph)
        if params is None:
            continue
        scale, shift = params
        w = constants[conv.inputs[1]]
        if w.shape[0] != scale.shape[0] or w.dtype.kind != "f":
            continue
        bias = constants[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 and conv.inputs[2] else 0.0
        new_w = (w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        new_b = (bias * scale + shift).astype(w.dtype)
        wname = unique_name(f"{conv.inputs[1]}__bnfold", taken)
        bname = unique_name(f"{conv.name}__bnfold_bias", taken)
        constants[wname] = new_w
        constants[bname] = new_b
        replaced[conv.name] = conv.replace(inputs=[conv.inputs[0], wname, bname], outputs=[bn.outputs[0]])
        dropped.add(bn.name)
    if not replaced:
        return graph
    nodes = [replaced.get(n.name, n) for n in graph.nodes if n.name not in dropped]
    ctx.count("folded_batchnorms", len(dropped))
    return graph.replace(nodes=nodes, constants=constants)
