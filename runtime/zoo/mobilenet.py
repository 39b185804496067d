"""torchvision MobileNetV2: inverted residuals with depthwise convs, ReLU6 as Clip(min, max)."""

from __future__ import annotations

import numpy as np
import onnx

from .builder import Builder, check_opset, pair

# expand ratio t, output channels c, repeats n, first stride s (Sandler et al. 2018, table 2)
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of 8, never below 90% of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(b: Builder, x: str, scope: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1) -> str:
    """torchvision's Conv2dNormActivation: scope.0 conv, scope.1 BN, scope.2 ReLU6."""
    y = b.conv(x, f"{scope}.0", cin, cout, k, stride=stride, pad=(k - 1) // 2, group=group, bias=False)
    y = b.batchnorm(y, f"{scope}.1", cout)
    path = "/" + scope.replace(".", "/") + "/2"
    # opset 11+: min and max are inputs; torch writes them as Constant nodes.
    lo, hi = b.const(np.float32(0.0), path), b.const(np.float32(6.0), path)
    return b.op("Clip", [y, lo, hi], path)


def mobilenetv2(*, size: int | tuple[int, int] = 224, batch: int = 1, seed: int = 0, opset: int = 11,
                num_classes: int = 1000, width_mult: float = 1.0) -> onnx.ModelProto:
    """MobileNetV2 (3.5M parameters at width 1.0)."""
    check_opset(opset, 11)
    h, w = pair(size)
    b = Builder("mobilenetv2", opset=opset, seed=seed)
    x = b.input("input", [batch, 3, h, w])
    c = _divisible(32 * width_mult)
    last = _divisible(1280 * max(1.0, width_mult))
    y = _conv_bn(b, x, "features.0", 3, c, 3, 2)
    i = 1
    for t, ch, n, s in _SETTINGS:
        cout = _divisible(ch * width_mult)
        for j in range(n):
            stride = s if j == 0 else 1
            scope, hidden = f"features.{i}.conv", int(round(c * t))
            z, k = y, 0
            if t != 1:
                z = _conv_bn(b, z, f"{scope}.0", c, hidden, 1)
                k = 1
            z = _conv_bn(b, z, f"{scope}.{k}", hidden, hidden, 3, stride, group=hidden)
            z = b.conv(z, f"{scope}.{k + 1}", hidden, cout, 1, bias=False, gain=1.0)
            residual = stride == 1 and c == cout
            # a smaller BN scale on residual branches keeps the sums near unit scale
            z = b.batchnorm(z, f"{scope}.{k + 2}", cout, gamma=(0.3, 0.5) if residual else (0.8, 1.2))
            y = b.op("Add", [y, z], f"/features/{i}") if residual else z
            c, i = cout, i + 1
    y = _conv_bn(b, y, f"features.{i}", c, last, 1)
    y = b.op("GlobalAveragePool", [y], "")
    y = b.op("Flatten", [y], "", axis=1)
    b.gemm(y, "classifier.1", last, num_classes, out="output")
    b.output("output", [batch, num_classes])
    return b.model("mobilenetv2: torchvision MobileNetV2, BatchNormalization unfused",
                   {"size": [h, w], "batch": batch, "seed": seed, "opset": opset, "num_classes": num_classes,
                    "width_mult": width_mult})
