"""Fold per-channel constant Mul/Add into the Conv or BatchNormalization that produces their input.

``Conv -> Mul(c) -> Add(d)`` (DenseNet-121 and Inception v2 of the light zoo put one after
every Conv + BatchNormalization) becomes one Conv with scaled filters and a shifted bias;
``BatchNormalization -> Mul(c) -> Add(d)`` becomes one BatchNormalization with scaled
``scale`` and ``bias``. Each fold removes a full pass over the tensor, and leaves the
activation that follows free to fuse into the producer.

A constant folds only when it is per channel: after left-padding to the tensor's rank, every
axis but 1 has size 1 and axis 1 has size 1 or the channel count. The rank comes from a small
propagation (graph inputs, Conv's weight rank, ops that keep their input's rank); where it is
unknown nothing folds, so a constant that would broadcast along another axis is never folded.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, unique_name, used_names
from .base import PassContext
from .fold_batchnorm import constant_batchnorm

_SAME_RANK = frozenset({
    "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Identity", "Dropout",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Concat", "LRN", "Softmax",
})


def ranks(graph: Graph, ctx: PassContext) -> dict[str, int]:
    """Tensor rank wherever it follows from the graph's inputs and constant weights alone."""
    out: dict[str, int] = {name: a.ndim for name, a in graph.constants.items()}
    for v in graph.inputs:
        info = ctx.input_infos.get(v.name, v.info)
        out[v.name] = len(info.shape)
    for node in graph.nodes:
        if not node.outputs or not node.outputs[0] or not node.inputs:
            continue
        if node.op_type == "Conv" and len(node.inputs) > 1 and node.inputs[1] in graph.constants:
            out[node.outputs[0]] = graph.constants[node.inputs[1]].ndim
        elif node.op_type in _SAME_RANK and node.inputs[0] in out:
            out[node.outputs[0]] = out[node.inputs[0]]
        elif node.op_type in ("Mul", "Add") and len(node.inputs) == 2 and all(i in out for i in node.inputs):
            out[node.outputs[0]] = max(out[i] for i in node.inputs)
    return out


def per_channel(value: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """``value`` as a (channels,) vector if it broadcasts over a rank-``rank`` tensor per channel."""
    if rank < 2 or value.ndim > rank or value.dtype.kind != "f":
        return None
    shape = (1,) * (rank - value.ndim) + tuple(value.shape)
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1)[:1] if shape[1] == 1 else value.reshape(-1), (channels,))


def _operand(node: Node, src: str, constants: dict[str, np.ndarray]) -> np.ndarray | None:
    """The constant operand of a two-input Mul/Add whose other operand is ``src``."""
    if node.op_type not in ("Mul", "Add") or len(node.inputs) != 2 or node.domain not in ("", "ai.onnx"):
        return None
    a, b = node.inputs
    other = b if a == src else a if b == src else None
    if other is None or other == src or other not in constants:
        return None
    return constants[other]


def _producer_channels(node: Node, constants: dict[str, np.ndarray]) -> tuple[int, np.dtype] | None:
    """(channel count, dtype) of a Conv or BatchNormalization whose parameters are constants."""
    if node.activation is not None or len([o for o in node.outputs if o]) != 1:
        return None
    if node.op_type == "Conv":
        if len(node.inputs) < 2 or node.inputs[1] not in constants:
            return None
        if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] not in constants:
            return None
        w = constants[node.inputs[1]]
        return (int(w.shape[0]), w.dtype) if w.dtype.kind == "f" else None
    if node.op_type == "BatchNormalization":
        if not constant_batchnorm(node, constants):
            return None
        scale = constants[node.inputs[1]]
        return (int(scale.shape[0]), scale.dtype) if scale.ndim == 1 and scale.dtype.kind == "f" else None
    return None


def fold_affine(graph: Graph, ctx: PassContext) -> Graph:
    """Fold every per-channel constant Mul/Add that is the only reader of a Conv/BN output.

    One pass over the nodes; a producer keeps folding while its new output's only reader is
    another such Mul/Add (``Conv -> Mul -> Add``). A replaced constant that nothing else reads is
    dropped at once, so the compile peak holds one old and one new copy of a single layer's
    filters, as in ``fold_batchnorm``.
    """
    visible = set(graph.output_names) | ctx.protected
    constants = dict(graph.constants)
    taken = used_names(graph)
    rank = ranks(graph, ctx)
    nodes: list[Node | None] = list(graph.nodes)
    consumers: dict[str, list[int]] = {}  # by index into ``nodes``; a folded-away reader becomes None
    for i, n in enumerate(graph.nodes):
        for name in n.inputs:
            if name:
                consumers.setdefault(name, []).append(i)

    def readers(name: str) -> list[int]:
        return [u for u in consumers.get(name, []) if (n := nodes[u]) is not None and name in n.inputs]

    folded = 0
    for i in range(len(nodes)):
        while (prod := nodes[i]) is not None and (spec := _producer_channels(prod, constants)) is not None:
            mid = prod.outputs[0]
            users = readers(mid)
            if mid in visible or len(users) != 1 or mid not in rank:
                break
            user = nodes[users[0]]
            assert user is not None
            value = _operand(user, mid, constants)
            vec = None if value is None else per_channel(value, rank[mid], spec[0])
            if vec is None or len([o for o in user.outputs if o]) != 1:
                break
            before = set(prod.inputs) | set(user.inputs)
            new = nodes[i] = _fold(prod, user, vec.astype(np.float64), constants, taken)
            nodes[users[0]] = None
            for name in before - set(new.inputs):  # old filters, bias and the Mul/Add operand
                if name in constants and name not in visible and not readers(name):
                    del constants[name]
            folded += 1
    if not folded:
        return graph
    ctx.count("folded_affine", folded)
    return graph.replace(nodes=[n for n in nodes if n is not None], constants=constants)


def _fold(prod: Node, user: Node, vec: np.ndarray, constants: dict[str, np.ndarray], taken: set[str]) -> Node:
    """``prod`` with ``user``'s per-channel Mul/Add folded in, writing ``user``'s output."""
    mul = user.op_type == "Mul"
    if prod.op_type == "Conv":
        w = constants[prod.inputs[1]]
        has_bias = len(prod.inputs) > 2 and bool(prod.inputs[2])
        bias = constants[prod.inputs[2]].astype(np.float64) if has_bias else np.zeros(w.shape[0])
        inputs = [prod.inputs[0], prod.inputs[1]]
        if mul:
            inputs[1] = unique_name(f"{prod.inputs[1]}__affine", taken)
            constants[inputs[1]] = np.multiply(w, vec.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1)))
            bias = bias * vec
        else:
            bias = bias + vec
        bname = unique_name(f"{prod.name}__affine_bias", taken)
        constants[bname] = bias.astype(w.dtype)
        return prod.replace(inputs=inputs + [bname], outputs=[user.outputs[0]])
    scale_name, bias_name = prod.inputs[1], prod.inputs[2]
    dtype = constants[scale_name].dtype
    scale = constants[scale_name].astype(np.float64)
    bias = constants[bias_name].astype(np.float64)
    inputs = list(prod.inputs)
    if mul:
        inputs[1] = unique_name(f"{scale_name}__affine", taken)
        constants[inputs[1]] = (scale * vec).astype(dtype)
        bias = bias * vec
    else:
        bias = bias + vec
    inputs[2] = unique_name(f"{bias_name}__affine", taken)
    constants[inputs[2]] = bias.astype(constants[bias_name].dtype)
    return prod.replace(inputs=inputs, outputs=[user.outputs[0]])
