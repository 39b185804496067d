"""A BERT encoder as ``torch.onnx.export`` writes Hugging Face's BertModel (eval mode).

Inputs ``input_ids`` and ``attention_mask`` (int64, [batch, seq_len]); outputs ``last_hidden_state``
and ``pooler_output``. Position and token-type ids are sliced from int64 buffers by the sequence length
read through Shape -> Gather -> Unsqueeze, reshape targets are concatenated from such pieces, the mask
becomes ``(1 - mask) * -10000`` through Unsqueeze/Cast/Sub/Mul, and GELU is 0.5*x*(1+erf(x/sqrt 2)).
``layer_norm="fused"`` writes LayerNormalization (opset 17+), ``"decomposed"`` the ReduceMean/Sub/Pow/
Sqrt/Div form of older exports. Weights follow BERT's init: normal(0, 0.02), LayerNorm near (1, 0).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from ..errors import ConfigError
from .builder import FLOAT, INT64, Builder, check_opset

_EPS = 1e-12


class _Bert:
    def __init__(self, b: Builder, hidden: int, heads: int, layer_norm: str) -> None:
        self.b, self.op = b, b.op
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.layer_norm = layer_norm

    def linear(self, x: str, scope: str, cin: int, cout: int) -> str:
        """nn.Linear on a 3-D input: MatMul with the transposed weight, then Add of the bias."""
        w = self.b.param(self.b.anon("MatMul"), self.b.normal((cin, cout), 0.02))
        bias = self.b.param(f"{scope}.bias", self.b.normal((cout,), 0.02))
        path = "/" + scope.replace(".", "/")
        return self.op("Add", [bias, self.op("MatMul", [x, w], path)], path)

    def norm(self, x: str, scope: str, out: str | None = None) -> str:
        b, path = self.b, "/" + scope.replace(".", "/")
        w = b.param(f"{scope}.weight", 1.0 + b.normal((self.hidden,), 0.05))
        bias = b.param(f"{scope}.bias", b.normal((self.hidden,), 0.05))
        if self.layer_norm == "fused":
            return self.op("LayerNormalization", [x, w, bias], path, out=out, axis=-1, epsilon=_EPS)
        mean = b.reduce_mean(x, [-1], path)
        d = self.op("Sub", [x, mean], path)
        var = b.reduce_mean(self.op("Pow", [d, b.const(np.float32(2.0), path)], path), [-1], path)
        std = self.op("Sqrt", [self.op("Add", [var, b.const(np.float32(_EPS), path)], path)], path)
        y = self.op("Mul", [self.op("Div", [d, std], path), w], path)
        return self.op("Add", [y, bias], path, out=out)

    def gelu(self, x: str, path: str) -> str:
        c = self.b.const
        erf = self.op("Erf", [self.op("Div", [x, c(np.float32(math.sqrt(2.0)), path)], path)], path)
        y = self.op("Mul", [x, self.op("Add", [erf, c(np.float32(1.0), path)], path)], path)
        return self.op("Mul", [y, c(np.float32(0.5), path)], path)

    def heads_view(self, x: str, path: str, perm: list[int]) -> str:
        """x.view(x.size()[:-1] + (heads, head_dim)).permute(...)"""
        b = self.b
        shape = self.op("Concat", [*b.dims(x, [0, 1], path), b.const(np.array([self.heads], np.int64), path),
                                   b.const(np.array([self.head_dim], np.int64), path)], path, axis=0)
        return self.op("Transpose", [self.op("Reshape", [x, shape], path)], path, perm=perm)

    def attention(self, x: str, mask: str, scope: str) -> str:
        path = "/" + scope.replace(".", "/") + "/self"
        q = self.heads_view(self.linear(x, f"{scope}.self.query", self.hidden, self.hidden), path, [0, 2, 1, 3])
        k = self.heads_view(self.linear(x, f"{scope}.self.key", self.hidden, self.hidden), path, [0, 2, 3, 1])
        v = self.heads_view(self.linear(x, f"{scope}.self.value", self.hidden, self.hidden), path, [0, 2, 1, 3])
        scores = self.op("MatMul", [q, k], path)
        scores = self.op("Div", [scores, self.b.const(np.float32(math.sqrt(self.head_dim)), path)], path)
        probs = self.op("Softmax", [self.op("Add", [scores, mask], path)], path, axis=-1)
        ctx = self.op("Transpose", [self.op("MatMul", [probs, v], path)], path, perm=[0, 2, 1, 3])
        shape = self.op("Concat", [*self.b.dims(ctx, [0, 1], path),
                                   self.b.const(np.array([self.hidden], np.int64), path)], path, axis=0)
        ctx = self.op("Reshape", [ctx, shape], path)
        y = self.linear(ctx, f"{scope}.output.dense", self.hidden, self.hidden)
        return self.norm(self.op("Add", [y, x], f"/{scope.replace('.', '/')}/output"), f"{scope}.output.LayerNorm")

    def layer(self, x: str, mask: str, scope: str, intermediate: int, out: str | None = None) -> str:
        a = self.attention(x, mask, f"{scope}.attention")
        h = self.linear(a, f"{scope}.intermediate.dense", self.hidden, intermediate)
        h = self.gelu(h, f"/{scope.replace('.', '/')}/intermediate/intermediate_act_fn")
        y = self.linear(h, f"{scope}.output.dense", intermediate, self.hidden)
        return self.norm(self.op("Add", [y, a], f"/{scope.replace('.', '/')}/output"), f"{scope}.output.LayerNorm",
                         out)

    def embeddings(self, ids: str, vocab: int, max_position: int, type_vocab: int) -> str:
        b, path = self.b, "/embeddings"
        seq = b.dims(ids, [1], path)[0]
        position_buf = b.param("embeddings.position_ids", np.arange(max_position, dtype=np.int64)[None])
        type_buf = b.param("embeddings.token_type_ids", np.zeros((1, max_position), np.int64))
        zero, one = b.const(np.array([0], np.int64), path), b.const(np.array([1], np.int64), path)
        types = self.op("Slice", [type_buf, zero, seq, one, one], path)
        types = self.op("Expand", [types, self.op("Concat", b.dims(ids, [0, 1], path), path, axis=0)], path)
        positions = self.op("Slice", [position_buf, zero, seq, one, one], path)
        words = b.param("embeddings.word_embeddings.weight", b.normal((vocab, self.hidden), 0.02))
        pos_table = b.param("embeddings.position_embeddings.weight", b.normal((max_position, self.hidden), 0.02))
        type_table = b.param("embeddings.token_type_embeddings.weight", b.normal((type_vocab, self.hidden), 0.02))
        e = self.op("Add", [self.op("Gather", [words, ids], f"{path}/word_embeddings"),
                            self.op("Gather", [type_table, types], f"{path}/token_type_embeddings")], path)
        e = self.op("Add", [e, self.op("Gather", [pos_table, positions], f"{path}/position_embeddings")], path)
        return self.norm(e, "embeddings.LayerNorm")

    def extended_mask(self, mask: str) -> str:
        """mask[:, None, None, :], cast to float, then (1.0 - m) * -10000.0"""
        b, path = self.b, ""
        m = b.unsqueeze(b.unsqueeze(mask, [1], path), [2], path)
        m = self.op("Cast", [m], path, to=FLOAT)
        m = self.op("Sub", [b.const(np.float32(1.0), path), m], path)
        return self.op("Mul", [m, b.const(np.float32(-10000.0), path)], path)


def bert(*, batch: int = 1, seq_len: int = 128, layers: int = 4, hidden: int = 256, heads: int = 4,
         intermediate: int | None = None, vocab: int = 30522, max_position: int = 512, type_vocab: int = 2,
         layer_norm: str = "fused", opset: int | None = None, seed: int = 0) -> onnx.ModelProto:
    """A BERT encoder; ``bert(layers=12, hidden=768, heads=12)`` is bert-base (110M parameters).

    ``intermediate`` defaults to 4 * hidden; ``opset`` to 17 (fused) or 14 (decomposed LayerNorm).
    """
    if layer_norm not in ("fused", "decomposed"):
        raise ConfigError(f"layer_norm must be 'fused' or 'decomposed', got {layer_norm!r}")
    opset = opset if opset is not None else (17 if layer_norm == "fused" else 14)
    check_opset(opset, 17 if layer_norm == "fused" else 13)
    if layers < 1 or hidden % heads:
        raise ConfigError(f"need layers >= 1 and hidden a multiple of heads; got {layers}, {hidden}, {heads}")
    if not 1 <= seq_len <= max_position:
        raise ConfigError(f"seq_len {seq_len} must be within 1..max_position ({max_position})")
    intermediate = 4 * hidden if intermediate is None else intermediate
    b = Builder("bert", opset=opset, seed=seed)
    ids = b.input("input_ids", [batch, seq_len], INT64)
    mask = b.input("attention_mask", [batch, seq_len], INT64)
    net = _Bert(b, hidden, heads, layer_norm)
    x = net.embeddings(ids, vocab, max_position, type_vocab)
    ext = net.extended_mask(mask)
    for i in range(layers):
        x = net.layer(x, ext, f"encoder.layer.{i}", intermediate, "last_hidden_state" if i == layers - 1 else None)
    first = b.op("Gather", [x, b.const(np.int64(0), "/pooler")], "/pooler", axis=1)
    b.op("Tanh", [b.gemm(first, "pooler.dense", hidden, hidden, std=0.02)], "/pooler/activation",
         out="pooler_output")
    b.output("last_hidden_state", [batch, seq_len, hidden])
    b.output("pooler_output", [batch, hidden])
    options = {"batch": batch, "seq_len": seq_len, "layers": layers, "hidden": hidden, "heads": heads,
               "intermediate": intermediate, "vocab": vocab, "max_position": max_position,
               "type_vocab": type_vocab, "layer_norm": layer_norm, "opset": opset, "seed": seed}
    return b.model(f"bert: {layers}-layer encoder, hidden {hidden}, {heads} heads", options)
