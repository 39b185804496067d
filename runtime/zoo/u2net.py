"""U^2-Net and U^2-Net-lite (Qin et al. 2020), as a PyTorch export of the reference code writes them.

Mirrors ``model/u2net.py`` of the reference implementation: REBNCONV is Conv(3x3, dilation) +
BatchNormalization + Relu, unfused; RSU-L blocks pool with MaxPool(2, 2, ceil_mode=1) and upsample
with ``F.upsample(size=tar.shape[2:], mode='bilinear')``, which exports as Resize(linear,
pytorch_half_pixel) fed by a Shape -> Gather -> Unsqueeze -> Concat size chain. Outputs are the
fused map ``d0`` and the six side maps ``d1``..``d6``, each through a Sigmoid, at input resolution.
"""

from __future__ import annotations

import numpy as np
import onnx

from .builder import INT64, Builder, check_opset, pair

# stage -> (RSU height, 4 for RSU-4F written as "4F", mid channels, out channels); in channels follow.
_FULL = {
    "stage1": (7, 32, 64), "stage2": (6, 32, 128), "stage3": (5, 64, 256), "stage4": (4, 128, 512),
    "stage5": ("4F", 256, 512), "stage6": ("4F", 256, 512),
    "stage5d": ("4F", 256, 512), "stage4d": (4, 128, 256), "stage3d": (5, 64, 128), "stage2d": (6, 32, 64),
    "stage1d": (7, 16, 64),
}
_LITE = {
    "stage1": (7, 16, 64), "stage2": (6, 16, 64), "stage3": (5, 16, 64), "stage4": (4, 16, 64),
    "stage5": ("4F", 16, 64), "stage6": ("4F", 16, 64),
    "stage5d": ("4F", 16, 64), "stage4d": (4, 16, 64), "stage3d": (5, 16, 64), "stage2d": (6, 16, 64),
    "stage1d": (7, 16, 64),
}


class _U2Net:
    def __init__(self, b: Builder) -> None:
        self.b = b
        self.op = b.op

    def rebnconv(self, x: str, scope: str, cin: int, cout: int, dirate: int, gain: float = 1.0) -> str:
        y = self.b.conv(x, f"{scope}.conv_s1", cin, cout, 3, pad=dirate, dilation=dirate)
        y = self.b.batchnorm(y, f"{scope}.bn_s1", cout, gamma=(0.8 * gain, 1.2 * gain))
        return self.op("Relu", [y], f"/{scope.replace('.', '/')}/relu_s1")

    def pool(self, x: str, scope: str) -> str:
        return self.op("MaxPool", [x], f"/{scope.replace('.', '/')}", ceil_mode=1, kernel_shape=[2, 2],
                       pads=[0, 0, 0, 0], strides=[2, 2])

    def upsample_like(self, src: str, tar: str, scope: str) -> str:
        """``F.upsample(src, size=tar.shape[2:], mode='bilinear')`` as torch.onnx writes it."""
        b, s = self.b, scope
        size = self.op("Concat", b.dims(tar, [2, 3], s), s, axis=0)
        size = self.op("Cast", [size], s, to=INT64)
        beg = self.op("Slice", [self.op("Shape", [src], s), b.const(np.array([0], np.int64), s),
                                b.const(np.array([2], np.int64), s), b.const(np.array([0], np.int64), s)], s)
        sizes = self.op("Concat", [beg, size], s, axis=0)
        if b.opset >= 13:  # optional inputs left out
            roi = scales = ""
        else:
            roi, scales = b.const(np.array([], np.float32), s), b.const(np.array([], np.float32), s)
        return self.op("Resize", [src, roi, scales, sizes], s, coordinate_transformation_mode="pytorch_half_pixel",
                       cubic_coeff_a=-0.75, mode="linear", nearest_mode="floor")

    def rsu(self, x: str, scope: str, height: int | str, cin: int, mid: int, cout: int) -> str:
        """RSU-L (L = height) or RSU-4F: a small U-Net inside a residual unit."""
        s = scope
        # Half-scale input conv: the residual sum then keeps the scale, so no sigmoid saturates.
        hxin = self.rebnconv(x, f"{s}.rebnconvin", cin, cout, 1, gain=0.5)
        dilated = height == "4F"
        levels = 4 if dilated else int(height)
        enc = [self.rebnconv(hxin, f"{s}.rebnconv1", cout, mid, 1)]
        for i in range(2, levels):
            h = enc[-1] if dilated else self.pool(enc[-1], f"{s}.pool{i - 1}")
            enc.append(self.rebnconv(h, f"{s}.rebnconv{i}", mid, mid, 2 ** (i - 1) if dilated else 1))
        d = self.rebnconv(enc[-1], f"{s}.rebnconv{levels}", mid, mid, 2 ** (levels - 1) if dilated else 2)
        for i in range(levels - 1, 0, -1):
            cat = self.op("Concat", [d, enc[i - 1]], f"/{s}", axis=1)
            d = self.rebnconv(cat, f"{s}.rebnconv{i}d", 2 * mid, cout if i == 1 else mid,
                              2 ** (i - 1) if dilated else 1)
            if i > 1 and not dilated:
                d = self.upsample_like(d, enc[i - 2], f"/{s}")
        return self.op("Add", [d, hxin], f"/{s}")

    def forward(self, x: str, config: dict, in_ch: int, out_ch: int) -> None:
        enc: list[tuple[str, int]] = []
        h, c = x, in_ch
        for i in range(1, 7):
            height, mid, cout = config[f"stage{i}"]
            if i > 1:
                h = self.pool(h, f"pool{i - 1}{i}")
            h = self.rsu(h, f"stage{i}", height, c, mid, cout)
            enc.append((h, cout))
            c = cout
        dec = [enc[5]]  # hx6, then hx5d .. hx1d
        for i in range(5, 0, -1):
            up = self.upsample_like(dec[-1][0], enc[i - 1][0], "")
            height, mid, cout = config[f"stage{i}d"]
            cat = self.op("Concat", [up, enc[i - 1][0]], "", axis=1)
            dec.append((self.rsu(cat, f"stage{i}d", height, dec[-1][1] + enc[i - 1][1], mid, cout), cout))
        feats = {6 - j: t for j, t in enumerate(dec)}  # side i reads hx{i}d (hx6 for i = 6)
        sides: list[str] = []
        for i in range(1, 7):
            d = self.b.conv(feats[i][0], f"side{i}", feats[i][1], out_ch, 3, pad=1, gain=1.0)
            sides.append(d if i == 1 else self.upsample_like(d, sides[0], ""))
        fused = self.b.conv(self.op("Concat", sides, "", axis=1), "outconv", 6 * out_ch, out_ch, 1, gain=1.0)
        for i, d in enumerate([fused, *sides]):
            self.op("Sigmoid", [d], "", out=f"d{i}")


def _build(name: str, config: dict, size: int | tuple[int, int], batch: int, seed: int, opset: int,
           in_ch: int, out_ch: int) -> onnx.ModelProto:
    check_opset(opset, 11)
    h, w = pair(size)
    b = Builder(name, opset=opset, seed=seed)
    x = b.input("input", [batch, in_ch, h, w])
    _U2Net(b).forward(x, config, in_ch, out_ch)
    for i in range(7):
        b.output(f"d{i}", [batch, out_ch, h, w])
    doc = f"{name}: U^2-Net (Qin et al. 2020), {'full' if config is _FULL else 'small'} configuration"
    return b.model(doc, {"size": [h, w], "batch": batch, "seed": seed, "opset": opset,
                         "in_ch": in_ch, "out_ch": out_ch})


def u2net(*, size: int | tuple[int, int] = 320, batch: int = 1, seed: int = 0, opset: int = 11,
          in_ch: int = 3, out_ch: int = 1) -> onnx.ModelProto:
    """U^2-Net, full configuration (about 44M parameters, 176 MB of float32 weights)."""
    return _build("u2net", _FULL, size, batch, seed, opset, in_ch, out_ch)


def u2netp(*, size: int | tuple[int, int] = 320, batch: int = 1, seed: int = 0, opset: int = 11,
           in_ch: int = 3, out_ch: int = 1) -> onnx.ModelProto:
    """U^2-Net-lite (U2NETP), the small configuration (about 1.1M parameters, 4.7 MB)."""
    return _build("u2netp", _LITE, size, batch, seed, opset, in_ch, out_ch)
