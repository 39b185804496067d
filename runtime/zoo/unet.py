"""A classic small U-Net (Ronneberger et al. 2015, as milesial/Pytorch-UNet writes it) whose decoder
upsamples with ConvTranspose(2x2, stride 2): the runtime's "memset" kernel for atomic_clean_policy."""

from __future__ import annotations

import math

import onnx

from ..errors import ConfigError
from .builder import Builder, check_opset, pair


def _double_conv(b: Builder, x: str, scope: str, cin: int, cout: int) -> str:
    """(Conv3x3 no bias -> BN -> Relu) twice, as ``scope.double_conv.{0..5}``."""
    for i, c in ((0, cin), (3, cout)):
        path = "/" + scope.replace(".", "/") + f"/double_conv/{i + 2}"
        x = b.conv(x, f"{scope}.double_conv.{i}", c, cout, 3, pad=1, bias=False)
        x = b.op("Relu", [b.batchnorm(x, f"{scope}.double_conv.{i + 1}", cout)], path)
    return x


def unet(*, size: int | tuple[int, int] = 256, batch: int = 1, seed: int = 0, opset: int = 11,
         in_channels: int = 3, classes: int = 2, base: int = 16, depth: int = 4) -> onnx.ModelProto:
    """U-Net with ``depth`` poolings and ``base`` channels at the top (base * 2**depth at the bottom)."""
    check_opset(opset, 11)
    h, w = pair(size)
    if depth < 1 or h % 2**depth or w % 2**depth:
        raise ConfigError(f"unet size {h}x{w} must be divisible by 2**depth = {2**depth}")
    b = Builder("unet", opset=opset, seed=seed)
    y = b.input("input", [batch, in_channels, h, w])
    skips = [(_double_conv(b, y, "inc", in_channels, base), base)]
    for i in range(1, depth + 1):
        y = b.op("MaxPool", [skips[-1][0]], f"/down{i}/maxpool_conv/0", ceil_mode=0, kernel_shape=[2, 2],
                 pads=[0, 0, 0, 0], strides=[2, 2])
        skips.append((_double_conv(b, y, f"down{i}.maxpool_conv.1", skips[-1][1], base * 2**i), base * 2**i))
    y, c = skips.pop()
    for i in range(1, depth + 1):
        skip, cs = skips.pop()
        fan_in = c * 4
        wt = b.param(f"up{i}.up.weight", b.normal((c, c // 2, 2, 2), math.sqrt(1.0 / fan_in)))
        bias = b.param(f"up{i}.up.bias", b.uniform((c // 2,), -0.05, 0.05))
        y = b.op("ConvTranspose", [y, wt, bias], f"/up{i}/up", dilations=[1, 1], group=1, kernel_shape=[2, 2],
                 pads=[0, 0, 0, 0], strides=[2, 2])
        y = b.op("Concat", [skip, y], f"/up{i}", axis=1)
        y, c = _double_conv(b, y, f"up{i}.conv", cs + c // 2, cs), cs
    b.conv(y, "outc.conv", c, classes, 1, gain=1.0, out="output")
    b.output("output", [batch, classes, h, w])
    return b.model(f"unet: depth {depth}, base {base}, ConvTranspose decoder",
                   {"size": [h, w], "batch": batch, "seed": seed, "opset": opset, "in_channels": in_channels,
                    "classes": classes, "base": base, "depth": depth})
