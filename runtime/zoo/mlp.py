"""A small multilayer perceptron: Gemm/Relu layers, the fastest model in the zoo."""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from .builder import Builder, check_opset


def mlp(*, batch: int = 1, in_features: int = 784, hidden: Sequence[int] = (512, 256), out_features: int = 10,
        seed: int = 0, opset: int = 13) -> onnx.ModelProto:
    """``input`` [batch, in_features] -> Gemm+Relu per hidden width -> Gemm -> ``output`` [batch, out_features]."""
    check_opset(opset, 7)
    b = Builder("mlp", opset=opset, seed=seed)
    y = b.input("input", [batch, in_features])
    widths = [in_features, *hidden]
    for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
        y = b.op("Relu", [b.gemm(y, f"layers.{2 * i}", cin, cout, std=(2.0 / cin) ** 0.5)], f"/layers/{2 * i + 1}")
    b.gemm(y, f"layers.{2 * len(hidden)}", widths[-1], out_features, out="output")
    b.output("output", [batch, out_features])
    return b.model(f"mlp: {' -> '.join(map(str, [*widths, out_features]))}",
                   {"batch": batch, "in_features": in_features, "hidden": list(hidden),
                    "out_features": out_features, "seed": seed, "opset": opset})
