"""Normalizations for inference: BatchNormalization, InstanceNormalization, LayerNormalization, LRN.

Statistics are computed on a 2-D (rows, reduced) view: the mean by numpy's pairwise
sum, the variance as a row-wise dot product of the centred data with itself, so no
full-size temporary is needed. The centred data is written straight into the output,
which lets these kernels run in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedOperatorError
from ..ir import TensorInfo
from .common import info, norm_axis, onnx_dtype
from .registry import Kernel, OpContext, register


def _float(x: TensorInfo, op: str) -> None:
    if x.dtype.kind != "f":
        raise ShapeError(f"{op} needs a floating-point input, got {x.dtype}")


def _standardize(xv: np.ndarray, ov: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """ov = (xv - mean) / sqrt(var + eps) row-wise; returns (mean, inv_std) as (rows, 1)."""
    mean = xv.mean(axis=1, keepdims=True)
    np.subtract(xv, mean, out=ov)
    var = np.einsum("ij,ij->i", ov, ov)[:, None]
    var /= xv.shape[1]
    var += ov.dtype.type(eps)
    inv = np.reciprocal(np.sqrt(var, out=var), out=var)
    ov *= inv
    return mean, inv


# -------------------------------------------------------------- BatchNormalization


def _batchnorm(
    ctx: OpContext, x: TensorInfo, params: Sequence[TensorInfo], epsilon: float, spatial: int = 1,
) -> Kernel:
    _float(x, "BatchNormalization")
    if len(x.shape) < 2:
        raise ShapeError(f"BatchNormalization needs an input of rank >= 2, got {list(x.shape)}")
    extra = [o for o in ctx.node.outputs[1:] if o]
    if extra:
        raise UnsupportedOperatorError(
            ctx.node.op_type, ctx.node.domain, ctx.opset, ctx.node.name,
            f"outputs {extra} exist only in training mode, which is not supported (export in eval mode)",
        )
    c = x.dims[1]
    full = x.dims[1:]
    # Work on (N, C, rest) so each channel's scale/shift covers one long contiguous row.
    x_view = (x.dims[0], c, int(np.prod(full[1:])))
    if spatial == 0 and all(tuple(p.shape) == full for p in params):
        view = (c, x_view[2])  # legacy spatial=0: one statistic per (channel, position)
    elif all(tuple(p.shape) == (c,) for p in params):
        view = (c, 1)
    else:
        raise ShapeError(
            f"scale/bias/mean/var shapes {[list(p.shape) for p in params]} should be [{c}] for input {list(x.shape)}"
        )
    dtype = x.dtype
    act = ctx.activation

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        scale, bias, mean, var = (np.asarray(p, np.float64) for p in ins[1:5])
        a = scale / np.sqrt(var + epsilon)
        b = bias - mean * a
        o = outs[0].reshape(x_view)
        np.multiply(ins[0].reshape(x_view), a.astype(dtype).reshape(view), out=o)
        o += b.astype(dtype).reshape(view)
        if act is not None:
            act(o)

    return Kernel([info(dtype, x.dims)], run, inplace=[(0, 0)])


@register("BatchNormalization", 1, fusable=True)
def BatchNormalization_1(
    ctx: OpContext, x: TensorInfo, scale: TensorInfo, bias: TensorInfo, mean: TensorInfo, var: TensorInfo, *,
    epsilon: float = 1e-5, momentum: float = 0.9, spatial: int = 1,
) -> Kernel:
    """Versions 1, 6 and 7: ``spatial=0`` normalizes per (channel, position); ``is_test`` is implied."""
    return _batchnorm(ctx, x, [scale, bias, mean, var], epsilon, spatial)


@register("BatchNormalization", 9, fusable=True)
def BatchNormalization_9(
    ctx: OpContext, x: TensorInfo, scale: TensorInfo, bias: TensorInfo, mean: TensorInfo, var: TensorInfo, *,
    epsilon: float = 1e-5, momentum: float = 0.9,
) -> Kernel:
    return _batchnorm(ctx, x, [scale, bias, mean, var], epsilon)


@register("BatchNormalization", 14, fusable=True)
def BatchNormalization_14(
    ctx: OpContext, x: TensorInfo, scale: TensorInfo, bias: TensorInfo, mean: TensorInfo, var: TensorInfo, *,
    epsilon: float = 1e-5, momentum: float = 0.9, training_mode: int = 0,
) -> Kernel:
    """Versions 14 and 15 (15 lets scale/bias and mean/var have their own float types)."""
    if training_mode:
        raise UnsupportedOperatorError(
            ctx.node.op_type, ctx.node.domain, ctx.opset, ctx.node.name,
            "training_mode=1 is not supported: this runtime does inference only (export in eval mode)",
        )
    return _batchnorm(ctx, x, [scale, bias, mean, var], epsilon)


# ----------------------------------------------------------- InstanceNormalization


@register("InstanceNormalization", 1, inplace=True)
def InstanceNormalization(
    ctx: OpContext, x: TensorInfo, scale: TensorInfo, bias: TensorInfo, *, epsilon: float = 1e-5,
) -> Kernel:
    """Versions 1 and 6: per (image, channel) statistics over the spatial axes."""
    _float(x, "InstanceNormalization")
    if len(x.shape) < 3:
        raise ShapeError(f"InstanceNormalization needs an input of rank >= 3, got {list(x.shape)}")
    n, c = x.dims[0], x.dims[1]
    for name, p in (("scale", scale), ("B", bias)):
        if tuple(p.shape) != (c,):
            raise ShapeError(f"{name} shape {list(p.shape)} should be [{c}]")
    v = (n * c, int(np.prod(x.dims[2:])))

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        xv, ov = ins[0].reshape(v), outs[0].reshape(v)
        _standardize(xv, ov, epsilon)
        o3 = ov.reshape(n, c, -1)
        o3 *= ins[1].reshape(1, c, 1)
        o3 += ins[2].reshape(1, c, 1)

    return Kernel([info(x.dtype, x.dims)], run, inplace=[(0, 0)])


# -------------------------------------------------------------- LayerNormalization


@register("LayerNormalization", 17, inplace=True)
def LayerNormalization(
    ctx: OpContext, x: TensorInfo, scale: TensorInfo, bias: TensorInfo | None = None, *,
    axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1,
) -> Kernel:
    """Statistics over axes [axis, rank); Mean and InvStdDev (type from stash_type) are optional outputs."""
    _float(x, "LayerNormalization")
    rank = len(x.shape)
    if rank == 0:
        raise ShapeError("LayerNormalization needs an input of rank >= 1")
    ax = norm_axis(axis, rank)
    stash = onnx_dtype(stash_type)
    if stash.kind != "f":
        raise ShapeError(f"stash_type {stash_type} is not a floating-point type")
    norm_shape = x.dims[ax:]
    for name, p in (("Scale", scale), ("B", bias)):
        if p is not None and (len(p.shape) > len(norm_shape) or
                              np.broadcast_shapes(p.dims, norm_shape) != norm_shape):
            raise ShapeError(f"{name} shape {list(p.shape)} does not broadcast to {list(norm_shape)}")
    rows = int(np.prod(x.dims[:ax]))
    v = (rows, int(np.prod(norm_shape)))
    stat_shape = x.dims[:ax] + (1,) * (rank - ax)
    converts = stash != x.dtype
    scratch = [info(stash, x.dims)] if converts else []

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o = outs[0]
        work = scr[0] if converts else o
        src = ins[0]
        if converts:
            np.copyto(work, src)
            src = work
        mean, inv = _standardize(src.reshape(v), work.reshape(v), epsilon)
        work *= ins[1]
        if len(ins) > 2 and ins[2] is not None:
            work += ins[2]
        if converts:
            np.copyto(o, work, casting="unsafe")
        if len(outs) > 1 and outs[1] is not None:
            np.copyto(outs[1], mean.reshape(stat_shape), casting="unsafe")
        if len(outs) > 2 and outs[2] is not None:
            np.copyto(outs[2], inv.reshape(stat_shape), casting="unsafe")

    outputs = [info(x.dtype, x.dims), info(stash, stat_shape), info(stash, stat_shape)]
    return Kernel(outputs, run, scratch=scratch, inplace=[(0, 0)])


# ---------------------------------------------------------------------------- LRN


@register("LRN", 1)
def LRN(
    ctx: OpContext, x: TensorInfo, *, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0,
) -> Kernel:
    """Cross-channel local response normalization (version 13 only widens types)."""
    _float(x, "LRN")
    if len(x.shape) < 3:
        raise ShapeError(f"LRN needs an input of rank >= 3, got {list(x.shape)}")
    if size < 1:
        raise ShapeError(f"size must be positive, got {size}")
    c = x.dims[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    t = x.dtype.type

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        a, o, sq = ins[0], outs[0], scr[0]
        np.square(a, out=sq)
        np.copyto(o, sq)
        # Window sum over channels: one shifted add per window offset, not per channel.
        for off in range(1, max(lo, hi) + 1):
            if off <= hi and off < c:
                o[:, : c - off] += sq[:, off:]
            if off <= lo and off < c:
                o[:, off:] += sq[:, : c - off]
        o *= t(alpha / size)
        o += t(bias)
        np.power(o, t(beta), out=o)
        np.divide(a, o, out=o)

    return Kernel([info(x.dtype, x.dims)], run, scratch=[info(x.dtype, x.dims)])
