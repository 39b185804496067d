"""ConvTranspose: one batched matmul per image into a column buffer, then col2im.

Columns: per group, W_g^T [Mg*K, Cg] @ x_g [Cg, H*W] (a transposed view, so BLAS does the
transpose). col2im scatter-adds each kernel tap's [M, H, W] slab into the output at
stride s, offset tap*dilation: a loop over the taps only.

With no pads to crop the output is a "memset" kernel (``zero_init``): the executor
zeroes it and the taps accumulate straight into it. With pads (or an output_shape
that crops), the taps accumulate into a scratch buffer the kernel zeroes itself, and
the cropped part is copied out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import info
from .registry import Kernel, OpContext, register


def transpose_pads(
    spatial: Sequence[int], k: Sequence[int], st: Sequence[int], dl: Sequence[int], out_pad: Sequence[int],
    auto_pad: str, pads: Sequence[int] | None, output_shape: Sequence[int] | None,
) -> tuple[list[int], list[int]]:
    """(pads [b..., e...], output spatial shape) following the ONNX ConvTranspose rules."""
    n = len(spatial)
    full = [st[i] * (spatial[i] - 1) + out_pad[i] + dl[i] * (k[i] - 1) + 1 for i in range(n)]
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if output_shape:
            target = [int(v) for v in output_shape][-n:]
            if len(target) != n:
                raise ShapeError(f"output_shape {list(output_shape)} must have {n} spatial entries")
        else:
            target = [spatial[i] * st[i] for i in range(n)]
        total = [full[i] - target[i] for i in range(n)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:  # SAME_LOWER, and NOTSET with output_shape (as the ONNX spec and reference do)
            begin = [t - t // 2 for t in total]
        p = begin + [total[i] - begin[i] for i in range(n)]
        return p, target
    if auto_pad == "VALID":
        p = [0] * (2 * n)
    elif auto_pad in ("NOTSET", ""):
        p = list(pads) if pads else [0] * (2 * n)
        if len(p) != 2 * n:
            raise ShapeError(f"pads {p} must have {2 * n} entries")
    else:
        raise ShapeError(f"unknown auto_pad {auto_pad!r}")
    out = [full[i] - p[i] - p[i + n] for i in range(n)]
    if min(out) < 1:
        raise ShapeError(f"pads {p} leave an empty output {out}")
    return p, out


@register("ConvTranspose", 1, fusable=True)
def ConvTranspose(
    ctx: OpContext, x: TensorInfo, w: TensorInfo, b: TensorInfo | None = None, *,
    auto_pad: str = "NOTSET", dilations: list[int] | None = None, group: int = 1,
    kernel_shape: list[int] | None = None, output_padding: list[int] | None = None,
    output_shape: list[int] | None = None, pads: list[int] | None = None, strides: list[int] | None = None,
) -> Kernel:
    """Versions 1, 11 and 22 (11 rewords the padding rules, 22 widens types)."""
    if len(x.shape) < 3 or len(w.shape) != len(x.shape):
        raise ShapeError(f"input {list(x.shape)} and weight {list(w.shape)} ranks do not fit")
    if x.dtype.kind != "f" or w.dtype != x.dtype:
        raise ShapeError(f"ConvTranspose needs matching float input and weight, got {x.dtype} and {w.dtype}")
    N, C = x.dims[0], x.dims[1]
    G = int(group)
    k = list(w.dims[2:])
    n = len(k)
    if kernel_shape and list(kernel_shape) != k:
        raise ShapeError(f"kernel_shape {kernel_shape} differs from weight shape {k}")
    if G < 1 or C % G or w.dims[0] != C:
        raise ShapeError(f"channels {C} / weight {list(w.shape)} do not fit group={G}")
    Mg = w.dims[1]
    M, Cg = Mg * G, C // G
    if b is not None and tuple(b.shape) != (M,):
        raise ShapeError(f"bias shape {list(b.shape)} should be [{M}]")
    st = list(strides) if strides else [1] * n
    dl = list(dilations) if dilations else [1] * n
    op = list(output_padding) if output_padding else [0] * n
    if len(st) != n or len(dl) != n or len(op) != n:
        raise ShapeError(f"strides {st}, dilations {dl}, output_padding {op} must have {n} entries")
    if min(st) < 1 or min(dl) < 1:
        raise ShapeError(f"strides {st} and dilations {dl} must be positive")
    spatial = list(x.dims[2:])
    p, out_sp = transpose_pads(spatial, k, st, dl, op, auto_pad, pads, output_shape)
    # Every tap writes inside [0, full); output position o reads full position o + pads_begin.
    full = [st[i] * (spatial[i] - 1) + dl[i] * (k[i] - 1) + 1 for i in range(n)]
    direct = all(p[i] <= 0 and full[i] - p[i] <= out_sp[i] for i in range(n))
    ksz, hw = int(np.prod(k)), int(np.prod(spatial))
    dtype = x.dtype
    scratch = [info(dtype, [G, Mg * ksz, hw])]
    if not direct:
        scratch.append(info(dtype, [M, *full]))
    taps = list(np.ndindex(*k))
    act = ctx.activation
    bias_view = (M,) + (1,) * n

    def tap_slices(tap: tuple[int, ...], shift: Sequence[int]) -> tuple[slice, ...]:
        return (slice(None),) + tuple(
            slice(tap[i] * dl[i] + shift[i], tap[i] * dl[i] + shift[i] + st[i] * (spatial[i] - 1) + 1, st[i])
            for i in range(n))

    shift = [-p[i] for i in range(n)] if direct else [0] * n
    dst_slices = [tap_slices(tap, shift) for tap in taps]
    # Cropping: the part of the full buffer that lands inside the output.
    crop_src = tuple(slice(max(p[i], 0), min(full[i], out_sp[i] + p[i])) for i in range(n))
    crop_dst = tuple(slice(max(-p[i], 0), min(full[i], out_sp[i] + p[i]) - p[i]) for i in range(n))
    covers = all(s.start == 0 and s.stop == out_sp[i] for i, s in enumerate(crop_dst))

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o, col = outs[0], scr[0]
        wt = ins[1].reshape(G, Cg, Mg * ksz).transpose(0, 2, 1)
        cols = col.reshape((M,) + tuple(k) + tuple(spatial))
        for i in range(N):
            np.matmul(wt, ins[0][i].reshape(G, Cg, hw), out=col)
            if direct:
                target = o[i]
            else:
                target = scr[1]
                target[...] = 0
            for tap, dst in zip(taps, dst_slices):
                target[dst] += cols[(slice(None),) + tap]
            if not direct:
                if not covers:
                    o[i] = 0
                o[i][(slice(None),) + crop_dst] = target[(slice(None),) + crop_src]
        if len(ins) > 2 and ins[2] is not None:
            o += ins[2].reshape(bias_view)
        if act is not None:
            act(o)

    return Kernel([info(dtype, [N, M, *out_sp])], run, scratch=scratch, zero_init=(0,) if direct else ())
