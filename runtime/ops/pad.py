"""Pad: constant, reflect, edge and wrap modes; negative pads crop.

The (cropped) input is copied into the centre of the output once. Constant mode then
fills the border slabs. The other modes fill each axis's two border slabs from the
part of the output already written, one axis after another, so corners come out
right. The source of each slab is computed in prepare as an index array, and turned
into a plain (possibly reversed or broadcast) slice when it is one, which covers
edge, and reflect/wrap narrower than the input: then no temporary is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

from ..errors import KernelError, ShapeError
from ..ir import TensorInfo
from .common import const, info, ints, norm_axes
from .registry import Kernel, OpContext, register

MODES = ("constant", "reflect", "edge", "wrap")
Index: TypeAlias = slice | np.ndarray  # explicit: without numpy's stubs (tox lint) np.ndarray is Any


def _as_slice(idx: np.ndarray) -> Index:
    """``idx`` as a slice when it is an arithmetic run (a broadcast slice when constant)."""
    if len(idx) == 1 or (idx == idx[0]).all():
        return slice(int(idx[0]), int(idx[0]) + 1)
    step = int(idx[1] - idx[0])
    if (np.diff(idx) == step).all():
        stop = int(idx[-1]) + step
        return slice(int(idx[0]), None if stop < 0 else stop, step)
    return idx


def _source_index(mode: str, dest: np.ndarray, begin: int, length: int) -> np.ndarray:
    """Centre position (in output coordinates) that fills each border position ``dest``."""
    rel = dest - begin
    if mode == "edge":
        src = np.clip(rel, 0, length - 1)
    elif mode == "wrap":
        src = np.mod(rel, length)
    else:  # reflect, as numpy: the edge is not repeated
        period = 2 * (length - 1)
        m = np.mod(rel, period) if period else np.zeros_like(rel)
        src = np.where(m >= length, period - m, m)
    return src + begin


def _pad(x: TensorInfo, pads: Sequence[int], mode: str, value: Any, axes: Sequence[int] | None,
         value_input: int | None = None) -> Kernel:
    """``value`` is the constant; ``value_input`` the input index holding it when it is only known at run time."""
    if mode not in MODES:
        raise ShapeError(f"unknown mode {mode!r}; expected one of {list(MODES)}")
    rank = len(x.shape)
    ax = list(range(rank)) if axes is None else list(norm_axes(axes, rank))
    if len(pads) != 2 * len(ax):
        raise ShapeError(f"pads {list(pads)} must have {2 * len(ax)} entries (2 per padded axis)")
    begin, end = [0] * rank, [0] * rank
    for i, a in enumerate(ax):
        begin[a], end[a] = int(pads[i]), int(pads[i + len(ax)])
    shape = list(x.dims)
    out_shape = [shape[i] + begin[i] + end[i] for i in range(rank)]
    if min(out_shape, default=1) < 0:
        raise ShapeError(f"pads {list(pads)} crop more than the input {shape} holds")
    # Negative pads crop the input; positive ones place it at an offset.
    crop = tuple(slice(max(-begin[i], 0), shape[i] - max(-end[i], 0)) for i in range(rank))
    lengths = [max(s.stop - s.start, 0) for s in crop]
    off = [max(begin[i], 0) for i in range(rank)]
    centre = tuple(slice(off[i], off[i] + lengths[i]) for i in range(rank))
    padded_axes = [i for i in range(rank) if off[i] or off[i] + lengths[i] < out_shape[i]]
    if mode != "constant":
        for i in padded_axes:
            if lengths[i] == 0:
                raise ShapeError(f"mode {mode!r} cannot pad axis {i}: the input is empty there")
    # One (slab, source) pair per border; the slab spans earlier axes fully and later axes' centre.
    fills: list[tuple[tuple[slice, ...], int, Index | None]] = []  # source None: constant mode
    for i in padded_axes:
        for lo, hi in ((0, off[i]), (off[i] + lengths[i], out_shape[i])):
            if hi <= lo:
                continue
            region = tuple(slice(None) if j < i else (slice(lo, hi) if j == i else centre[j]) for j in range(rank))
            src = None if mode == "constant" else _as_slice(
                _source_index(mode, np.arange(lo, hi), off[i], lengths[i]))
            fills.append((region, i, src))
    dtype = x.dtype
    fill_value = None if value_input is not None else np.asarray(value).astype(dtype)

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o = outs[0]
        o[centre] = ins[0][crop]
        if mode == "constant":
            v = fill_value
            if v is None:
                if value_input is None:  # fill_value is only None when the constant is an input
                    raise KernelError("Pad has neither a constant value nor an input holding it")
                raw = ins[value_input] if len(ins) > value_input and ins[value_input] is not None else 0
                v = np.asarray(raw).reshape(-1)[:1].astype(dtype).reshape(())
            for region, _, _ in fills:
                o[region] = v
            return
        for region, i, src in fills:
            source = tuple(src if j == i else region[j] for j in range(rank))
            o[region] = o[source]

    return Kernel([info(dtype, out_shape)], run)


@register("Pad", 1)
def Pad_1(ctx: OpContext, x: TensorInfo, *, paddings: list[int], mode: str = "constant",
          value: float = 0.0) -> Kernel:
    _check_wrap(ctx, mode)
    return _pad(x, paddings, mode, value, None)


@register("Pad", 2)
def Pad_2(ctx: OpContext, x: TensorInfo, *, pads: list[int], mode: str = "constant", value: float = 0.0) -> Kernel:
    _check_wrap(ctx, mode)
    return _pad(x, pads, mode, value, None)


def _constant(c: TensorInfo | None) -> tuple[Any, int | None]:
    if c is None:
        return 0, None
    if c.value is None:
        return None, 2
    v = np.asarray(const(c, "constant_value")).reshape(-1)
    return (v[0] if v.size else 0), None


def _check_wrap(ctx: OpContext, mode: str) -> None:
    if mode == "wrap" and ctx.opset < 19:
        raise ShapeError(f"mode 'wrap' needs opset 19 or later (model opset {ctx.opset})")


@register("Pad", 11)
def Pad_11(ctx: OpContext, x: TensorInfo, pads: TensorInfo, constant_value: TensorInfo | None = None, *,
           mode: str = "constant") -> Kernel:
    """Versions 11 and 13: pads and the constant become inputs."""
    _check_wrap(ctx, mode)
    value, vi = _constant(constant_value)
    return _pad(x, ints(pads, "pads"), mode, value, None, vi)


@register("Pad", 18)
def Pad_18(ctx: OpContext, x: TensorInfo, pads: TensorInfo, constant_value: TensorInfo | None = None,
           axes: TensorInfo | None = None, *, mode: str = "constant") -> Kernel:
    """Version 18: an optional ``axes`` input says which axes ``pads`` covers."""
    _check_wrap(ctx, mode)
    value, vi = _constant(constant_value)
    ax = None if axes is None else ints(axes, "axes")
    return _pad(x, ints(pads, "pads"), mode, value, ax, vi)


@register("Pad", 19)
def Pad_19(ctx: OpContext, x: TensorInfo, pads: TensorInfo, constant_value: TensorInfo | None = None,
           axes: TensorInfo | None = None, *, mode: str = "constant") -> Kernel:
    """Versions 19 to 25: adds mode 'wrap' (later versions only widen types)."""
    value, vi = _constant(constant_value)
    ax = None if axes is None else ints(axes, "axes")
    return _pad(x, ints(pads, "pads"), mode, value, ax, vi)
