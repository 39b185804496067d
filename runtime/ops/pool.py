"""Pooling: MaxPool, AveragePool, LpPool and their Global forms.

A box window is separable: max and sum reduce one spatial axis at a time, each pass a
loop over that axis's taps (kh, then kw) of strided views reduced with a ufunc ``out=``
(MaxPool with Indices loops over all kh*kw taps to track the argmax). Padding goes
into a planned scratch copy, its border filled with the reduction's identity (-inf or
the integer minimum for Max, 0 for sums); ceil_mode windows that run past the padded
input get that many extra identity cells. AveragePool divides by a per-position
window count computed once in prepare, as the outer product of per-axis counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import info
from .conv import conv_geometry, pad_into, window_view
from .registry import Kernel, OpContext, register


class _Geometry:
    """Strides, dilations, pads, output size and the padded source shape of one pool."""

    def __init__(self, x: TensorInfo, kernel_shape: Sequence[int], auto_pad: str, pads: Sequence[int] | None,
                 strides: Sequence[int] | None, dilations: Sequence[int] | None, ceil_mode: int) -> None:
        if len(x.shape) < 3:
            raise ShapeError(f"pooling needs an input of rank >= 3 (N, C, spatial...), got {list(x.shape)}")
        self.k = [int(v) for v in kernel_shape]
        if len(self.k) != len(x.shape) - 2 or min(self.k) < 1:
            raise ShapeError(f"kernel_shape {self.k} does not fit input {list(x.shape)}")
        n = len(self.k)
        self.st, self.dl, self.p, self.out = conv_geometry(x, self.k, auto_pad, dilations, pads, strides, ceil_mode)
        if any(v < 0 for v in self.p):
            raise ShapeError(f"pads {self.p} must not be negative")
        self.spatial = list(x.dims[2:])
        self.end = []  # padding after each axis, including ceil_mode overhang
        for i in range(n):
            need = (self.out[i] - 1) * self.st[i] + self.dl[i] * (self.k[i] - 1) + 1
            self.end.append(max(self.p[i + n], need - self.spatial[i] - self.p[i]))
        self.pads = self.p[:n] + self.end
        self.padded = any(self.pads)
        self.pshape = [x.dims[0], x.dims[1]] + [
            self.spatial[i] + self.p[i] + self.end[i] for i in range(n)]
        self.out_shape = [x.dims[0], x.dims[1], *self.out]

    def taps(self) -> list[tuple[int, ...]]:
        return list(np.ndindex(*self.k))

    def positions(self, axis: int) -> np.ndarray:
        """Input coordinate of every (tap, output) pair along ``axis``; padding is negative or >= size."""
        o = np.arange(self.out[axis])
        j = np.arange(self.k[axis])
        return o[None, :] * self.st[axis] + j[:, None] * self.dl[axis] - self.p[axis]

    def counts(self, include_pad: bool) -> np.ndarray:
        """Number of cells averaged at each output position."""
        n = len(self.k)
        total = np.ones(self.out, np.float64)
        for i in range(n):
            pos = self.positions(i)
            lo, hi = (-self.p[i], self.spatial[i] + self.p[i + n]) if include_pad else (0, self.spatial[i])
            c = ((pos >= lo) & (pos < hi)).sum(axis=0)
            total = total * c.reshape((1,) * i + (-1,) + (1,) * (n - i - 1))
        return total


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    raise ShapeError(f"MaxPool does not support {dtype}")


def _source(g: _Geometry, fill: Any) -> Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]:
    """Function (x, scratch) -> the array the windows slide over."""
    def source(x: np.ndarray, scr: Sequence[np.ndarray]) -> np.ndarray:
        if g.padded:
            pad_into(x, scr[0], g.pads, fill)
            return scr[0]
        return x
    return source


def _separable(g: _Geometry, dtype: np.dtype, ufunc: np.ufunc, first: int) -> tuple[
        list[TensorInfo], Callable[[np.ndarray, np.ndarray, Sequence[np.ndarray]], None]]:
    """A box reduction (max or sum) as one pass per spatial axis, outermost axis first.

    Reducing axis by axis costs sum(k_i) strided ufunc calls instead of prod(k_i); the
    first passes move whole contiguous rows, and the strided innermost axis comes last,
    on the smallest data. Intermediates live in scratch from index ``first`` on.
    """
    n = len(g.k)
    order = list(range(n))
    shape = list(g.pshape)
    shapes = []
    for axis in order:
        shape[2 + axis] = g.out[axis]
        shapes.append(tuple(shape))
    scratch = [info(dtype, sh) for sh in shapes[:-1]]

    def reduce(src: np.ndarray, o: np.ndarray, scr: Sequence[np.ndarray]) -> None:
        cur = src
        for stage, axis in enumerate(order):
            dst = o if stage == n - 1 else scr[first + stage]
            s, d, m = g.st[axis], g.dl[axis], g.out[axis]
            lead = (slice(None),) * (2 + axis)
            for j in range(g.k[axis]):
                view = cur[lead + (slice(j * d, j * d + s * (m - 1) + 1, s),)]
                if j == 0:
                    np.copyto(dst, view)
                else:
                    ufunc(dst, view, out=dst)
            cur = dst

    return scratch, reduce


# ------------------------------------------------------------------------ MaxPool


def _max_pool(x: TensorInfo, want_indices: bool, storage_order: int, **geo: Any) -> Kernel:
    g = _Geometry(x, **geo)
    lowest = _lowest(x.dtype)
    scratch = [info(x.dtype, g.pshape)] if g.padded else []
    source = _source(g, lowest)
    taps = g.taps()
    n = len(g.k)
    sel = (slice(None), slice(None))

    if not want_indices:
        extra, reduce = _separable(g, x.dtype, np.maximum, len(scratch))

        def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
            reduce(source(ins[0], scr), outs[0], scr)

        return Kernel([info(x.dtype, g.out_shape)], run, scratch=scratch + extra)

    # Indices: flat position in the input tensor (N, C included); storage_order=1 numbers
    # the spatial axes column-major. Precomputed per tap, with a validity mask for taps
    # that fall on padding so ties with the fill value never point outside the input.
    pos = [g.positions(i) for i in range(n)]
    order = range(n - 1, -1, -1) if storage_order else range(n)
    strides_flat, acc = [0] * n, 1
    for i in reversed(list(order)):
        strides_flat[i] = acc
        acc *= g.spatial[i]
    tap_index, tap_valid = [], []
    for tap in taps:
        idx = np.zeros(g.out, np.int64)
        valid = np.ones(g.out, bool)
        for i, j in enumerate(tap):
            shape = (1,) * i + (-1,) + (1,) * (n - i - 1)
            p = pos[i][j].reshape(shape)
            idx = idx + p * strides_flat[i]
            valid = valid & ((p >= 0) & (p < g.spatial[i]))
        tap_index.append(idx)
        tap_valid.append(None if valid.all() else valid)
    nc = x.dims[0] * x.dims[1]
    base = (np.arange(nc, dtype=np.int64) * int(np.prod(g.spatial))).reshape(
        [x.dims[0], x.dims[1]] + [1] * n)
    scratch += [info(np.bool_, g.out_shape), info(np.bool_, g.out_shape)]
    m1_i, m2_i = len(scratch) - 2, len(scratch) - 1

    def run_idx(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o, ind = outs[0], outs[1]
        m1, m2 = scr[m1_i], scr[m2_i]
        view = window_view(source(ins[0], scr), g.k, g.st, g.dl, g.out)
        o[...] = lowest
        ind[...] = -1
        for tap, idx, valid in zip(taps, tap_index, tap_valid):
            v = view[sel + tap]
            np.greater(v, o, out=m1)
            np.less(ind, 0, out=m2)  # the first valid tap always counts
            m1 |= m2
            if valid is not None:
                m1 &= valid
            np.copyto(o, v, where=m1)
            np.copyto(ind, np.broadcast_to(idx, ind.shape), where=m1)
        ind += base

    outputs = [info(x.dtype, g.out_shape), info(np.int64, g.out_shape)]
    return Kernel(outputs, run_idx, scratch=scratch)


@register("MaxPool", 1)
def MaxPool_1(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
              pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    return _max_pool(x, False, 0, kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads, strides=strides,
                     dilations=None, ceil_mode=0)


@register("MaxPool", 8)
def MaxPool_8(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
              pads: list[int] | None = None, storage_order: int = 0, strides: list[int] | None = None) -> Kernel:
    want = len(ctx.node.outputs) > 1 and bool(ctx.node.outputs[1])
    return _max_pool(x, want, storage_order, kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=None, ceil_mode=0)


@register("MaxPool", 10)
def MaxPool_10(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
               ceil_mode: int = 0, dilations: list[int] | None = None, pads: list[int] | None = None,
               storage_order: int = 0, strides: list[int] | None = None) -> Kernel:
    """Versions 10 to 22 (11, 12 and 22 only widen types or reword)."""
    want = len(ctx.node.outputs) > 1 and bool(ctx.node.outputs[1])
    return _max_pool(x, want, storage_order, kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=dilations, ceil_mode=ceil_mode)


# ---------------------------------------------------------------- Average / Lp


def _sum_pool(x: TensorInfo, kind: str, count_include_pad: int = 0, p: float = 2.0, **geo: Any) -> Kernel:
    if x.dtype.kind != "f":
        raise ShapeError(f"{kind} needs a floating-point input, got {x.dtype}")
    g = _Geometry(x, **geo)
    source = _source(g, 0)
    lp = kind == "LpPool"
    if lp and p <= 0:
        raise ShapeError(f"p must be positive, got {p}")
    # LpPool raises |x| to p in a scratch copy, padded or not.
    scratch = [info(x.dtype, g.pshape)] if (g.padded or lp) else []
    extra, reduce = _separable(g, x.dtype, np.add, len(scratch))
    divisor = None if lp else g.counts(bool(count_include_pad)).astype(x.dtype)
    t = x.dtype.type

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o = outs[0]
        if lp:
            src = scr[0]
            if g.padded:
                pad_into(ins[0], src, g.pads, 0)
            else:
                np.copyto(src, ins[0])
            np.abs(src, out=src)
            if p != 1:
                np.power(src, t(p), out=src)
        else:
            src = source(ins[0], scr)
        reduce(src, o, scr)
        if lp:
            if p != 1:
                np.power(o, t(1.0 / p), out=o)
        else:
            assert divisor is not None
            np.divide(o, divisor, out=o)

    return Kernel([info(x.dtype, g.out_shape)], run, scratch=scratch + extra)


@register("AveragePool", 1)
def AveragePool_1(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
                  pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    return _sum_pool(x, "AveragePool", kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=None, ceil_mode=0)


@register("AveragePool", 7)
def AveragePool_7(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
                  count_include_pad: int = 0, pads: list[int] | None = None,
                  strides: list[int] | None = None) -> Kernel:
    return _sum_pool(x, "AveragePool", count_include_pad, kernel_shape=kernel_shape, auto_pad=auto_pad,
                     pads=pads, strides=strides, dilations=None, ceil_mode=0)


@register("AveragePool", 10)
def AveragePool_10(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
                   ceil_mode: int = 0, count_include_pad: int = 0, pads: list[int] | None = None,
                   strides: list[int] | None = None) -> Kernel:
    """Versions 10 and 11."""
    return _sum_pool(x, "AveragePool", count_include_pad, kernel_shape=kernel_shape, auto_pad=auto_pad,
                     pads=pads, strides=strides, dilations=None, ceil_mode=ceil_mode)


@register("AveragePool", 19)
def AveragePool_19(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
                   ceil_mode: int = 0, count_include_pad: int = 0, dilations: list[int] | None = None,
                   pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    """Versions 19 and 22: adds dilations."""
    return _sum_pool(x, "AveragePool", count_include_pad, kernel_shape=kernel_shape, auto_pad=auto_pad,
                     pads=pads, strides=strides, dilations=dilations, ceil_mode=ceil_mode)


@register("LpPool", 1)
def LpPool_1(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
             p: float = 2.0, pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    return _sum_pool(x, "LpPool", p=float(p), kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=None, ceil_mode=0)


@register("LpPool", 2)
def LpPool_2(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
             p: int = 2, pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    """Versions 2 and 11: ``p`` becomes an int."""
    return _sum_pool(x, "LpPool", p=float(p), kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=None, ceil_mode=0)


@register("LpPool", 18)
def LpPool_18(ctx: OpContext, x: TensorInfo, *, kernel_shape: list[int], auto_pad: str = "NOTSET",
              ceil_mode: int = 0, dilations: list[int] | None = None, p: int = 2,
              pads: list[int] | None = None, strides: list[int] | None = None) -> Kernel:
    """Versions 18 and 22: adds ceil_mode and dilations."""
    return _sum_pool(x, "LpPool", p=float(p), kernel_shape=kernel_shape, auto_pad=auto_pad, pads=pads,
                     strides=strides, dilations=dilations, ceil_mode=ceil_mode)


# ------------------------------------------------------------------------ Global


def _global(x: TensorInfo, kind: str, p: float = 2.0) -> Kernel:
    if len(x.shape) < 3:
        raise ShapeError(f"{kind} needs an input of rank >= 3 (N, C, spatial...), got {list(x.shape)}")
    if kind != "GlobalMaxPool" and x.dtype.kind != "f":
        raise ShapeError(f"{kind} needs a floating-point input, got {x.dtype}")
    n, c = x.dims[0], x.dims[1]
    v = (n, c, int(np.prod(x.dims[2:])))
    out_shape = [n, c] + [1] * (len(x.shape) - 2)
    scratch = [info(x.dtype, x.dims)] if kind == "GlobalLpPool" and p != 2 else []
    t = x.dtype.type

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        xv, ov = ins[0].reshape(v), outs[0].reshape(n, c)
        if kind == "GlobalAveragePool":
            np.mean(xv, axis=2, out=ov)
        elif kind == "GlobalMaxPool":
            np.max(xv, axis=2, out=ov)
        elif p == 2:
            np.sqrt(np.einsum("ijk,ijk->ij", xv, xv), out=ov)
        else:
            tmp = scr[0].reshape(v)
            np.abs(xv, out=tmp)
            np.power(tmp, t(p), out=tmp)
            np.sum(tmp, axis=2, out=ov)
            np.power(ov, t(1.0 / p), out=ov)

    return Kernel([info(x.dtype, out_shape)], run, scratch=scratch)


@register("GlobalAveragePool", 1)
def GlobalAveragePool(ctx: OpContext, x: TensorInfo) -> Kernel:
    return _global(x, "GlobalAveragePool")


@register("GlobalMaxPool", 1)
def GlobalMaxPool(ctx: OpContext, x: TensorInfo) -> Kernel:
    return _global(x, "GlobalMaxPool")


@register("GlobalLpPool", 1)
def GlobalLpPool_1(ctx: OpContext, x: TensorInfo, *, p: float = 2.0) -> Kernel:
    return _global(x, "GlobalLpPool", float(p))


@register("GlobalLpPool", 2)
def GlobalLpPool_2(ctx: OpContext, x: TensorInfo, *, p: int = 2) -> Kernel:
    return _global(x, "GlobalLpPool", float(p))
