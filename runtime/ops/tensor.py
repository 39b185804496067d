"""Layout kernels: Concat, Split, Slice, Transpose, Expand, Tile, Range, DepthToSpace/SpaceToDepth, Trilu, CumSum.

Inputs that decide an output shape (split sizes, slice bounds, expand shape, repeats,
range scalars) must be known at plan time; everything else is read in ``run``. Each
run writes the preallocated output through ``np.copyto``/``out=`` on a view, so the
only memory these kernels touch is the planned one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import broadcast, const, info, ints, norm_axes, norm_axis, same_dtype
from .registry import Kernel, OpContext, register

# ----------------------------------------------------------------------- Concat


def _concat(xs: Sequence[TensorInfo | None], axis: int) -> Kernel:
    if not xs or any(x is None for x in xs):
        raise ShapeError("Concat needs at least one input and no omitted inputs")
    infos = [x for x in xs if x is not None]
    dtype = same_dtype(*infos)
    rank = len(infos[0].shape)
    if rank == 0 or any(len(x.shape) != rank for x in infos):
        raise ShapeError(f"inputs must share one rank >= 1, got shapes {[list(x.shape) for x in infos]}")
    ax = norm_axis(axis, rank)
    shape = list(infos[0].dims)
    for x in infos[1:]:
        if any(a != b for i, (a, b) in enumerate(zip(shape, x.dims)) if i != ax):
            raise ShapeError(f"shapes {[list(x.shape) for x in infos]} differ outside axis {ax}")
    shape[ax] = sum(x.dims[ax] for x in infos)

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.concatenate(ins, axis=ax, out=outs[0])

    return Kernel([info(dtype, shape)], run)


@register("Concat", 1)
def Concat_1(ctx: OpContext, *xs: TensorInfo, axis: int = 1) -> Kernel:
    return _concat(xs, axis)


@register("Concat", 4)
def Concat(ctx: OpContext, *xs: TensorInfo, axis: int) -> Kernel:
    return _concat(xs, axis)


# ------------------------------------------------------------------------ Split


def _split(ctx: OpContext, x: TensorInfo, axis: int, split: Sequence[int] | None,
           num_outputs: int | None = None) -> Kernel:
    n = len(ctx.node.outputs)
    ax = norm_axis(axis, len(x.shape))
    dim = x.dims[ax]
    if split is not None and len(split) > 0:
        sizes = [int(s) for s in split]
        if len(sizes) != n or sum(sizes) != dim or min(sizes) < 0:
            raise ShapeError(f"split {sizes} does not cut axis {ax} of size {dim} into {n} outputs")
    elif num_outputs is not None:
        if num_outputs != n or n < 1:
            raise ShapeError(f"num_outputs={num_outputs} but the node has {n} outputs")
        chunk = -(-dim // n)  # the last chunk is the smaller one when uneven
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        if sizes[-1] < 0:
            raise ShapeError(f"axis of size {dim} cannot be split into {n} chunks of {chunk}")
    else:
        if dim % n:
            raise ShapeError(f"axis {ax} of size {dim} does not split evenly into {n} outputs")
        sizes = [dim // n] * n
    bounds = np.cumsum([0] + sizes)
    views = [(slice(None),) * ax + (slice(int(b), int(e)),) for b, e in zip(bounds[:-1], bounds[1:])]
    outputs = []
    for s in sizes:
        shape = list(x.dims)
        shape[ax] = s
        outputs.append(info(x.dtype, shape))

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        for o, v in zip(outs, views):
            if o is not None:
                np.copyto(o, ins[0][v])

    return Kernel(outputs, run)


@register("Split", 1)
def Split_1(ctx: OpContext, x: TensorInfo, split_in: TensorInfo | None = None, *, axis: int = 0,
            split: list[int] | None = None) -> Kernel:
    return _split(ctx, x, axis, ints(split_in, "split") if split_in is not None else split)


@register("Split", 2)
def Split_2(ctx: OpContext, x: TensorInfo, *, axis: int = 0, split: list[int] | None = None) -> Kernel:
    return _split(ctx, x, axis, split)


@register("Split", 13)
def Split_13(ctx: OpContext, x: TensorInfo, split: TensorInfo | None = None, *, axis: int = 0) -> Kernel:
    return _split(ctx, x, axis, None if split is None else ints(split, "split"))


@register("Split", 18)
def Split(ctx: OpContext, x: TensorInfo, split: TensorInfo | None = None, *, axis: int = 0,
          num_outputs: int | None = None) -> Kernel:
    if split is not None and num_outputs is not None:
        raise ShapeError("give either the 'split' input or the num_outputs attribute, not both")
    return _split(ctx, x, axis, None if split is None else ints(split, "split"), num_outputs)


# ------------------------------------------------------------------------ Slice


def slice_axis(start: int, end: int, step: int, dim: int) -> tuple[slice, int]:
    """One axis of an ONNX slice: clamped Python slice and its length."""
    if step == 0:
        raise ShapeError("slice step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        # Negative steps clamp end to -1, meaning "through index 0", which Python spells None.
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    n = len(range(start, end, step))
    return slice(start, end if end >= 0 else None, step), n


def _slice(x: TensorInfo, starts: list[int], ends: list[int], axes: list[int] | None,
           steps: list[int] | None) -> Kernel:
    rank = len(x.shape)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} differ in length")
    index: list[slice] = [slice(None)] * rank
    shape = list(x.dims)
    for a, b, e, s in zip(norm_axes(axes, rank), starts, ends, steps):
        index[a], shape[a] = slice_axis(b, e, s, shape[a])
    view = tuple(index)

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.copyto(outs[0], ins[0][view])

    return Kernel([info(x.dtype, shape)], run)


@register("Slice", 1)
def Slice_1(ctx: OpContext, x: TensorInfo, *, starts: list[int], ends: list[int],
            axes: list[int] | None = None) -> Kernel:
    return _slice(x, starts, ends, axes, None)


@register("Slice", 10)
def Slice(ctx: OpContext, x: TensorInfo, starts: TensorInfo, ends: TensorInfo,
          axes: TensorInfo | None = None, steps: TensorInfo | None = None) -> Kernel:
    return _slice(x, ints(starts, "starts"), ints(ends, "ends"),
                  None if axes is None else ints(axes, "axes"), None if steps is None else ints(steps, "steps"))


# ------------------------------------------------------------- Transpose/Expand/Tile


@register("Transpose", 1)
def Transpose(ctx: OpContext, x: TensorInfo, *, perm: list[int] | None = None) -> Kernel:
    rank = len(x.shape)
    p = list(range(rank))[::-1] if perm is None else [int(a) for a in perm]
    if sorted(p) != list(range(rank)):
        raise ShapeError(f"perm {p} is not a permutation of {rank} axes")

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.copyto(outs[0], ins[0].transpose(p))

    return Kernel([info(x.dtype, [x.dims[a] for a in p])], run)


@register("Expand", 8)
def Expand(ctx: OpContext, x: TensorInfo, shape: TensorInfo) -> Kernel:
    out = broadcast(x.dims, ints(shape, "shape"))

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.copyto(outs[0], ins[0])

    return Kernel([info(x.dtype, out)], run)


def _tile(x: TensorInfo, repeats: list[int]) -> Kernel:
    dims = list(x.dims)
    if len(repeats) != len(dims) or any(r < 0 for r in repeats):
        raise ShapeError(f"repeats {repeats} must be {len(dims)} non-negative counts")
    # Write through an interleaved (r0, d0, r1, d1, ...) view: broadcasting does the tiling.
    out_view = [v for r, d in zip(repeats, dims) for v in (r, d)]
    src_view = [v for d in dims for v in (1, d)]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.copyto(outs[0].reshape(out_view), ins[0].reshape(src_view))

    return Kernel([info(x.dtype, [r * d for r, d in zip(repeats, dims)])], run)


@register("Tile", 1)
def Tile_1(ctx: OpContext, x: TensorInfo, tiles: TensorInfo, axis: TensorInfo) -> Kernel:
    reps = [1] * len(x.shape)
    reps[norm_axis(ints(axis, "axis")[0], len(x.shape))] = ints(tiles, "tiles")[0]
    return _tile(x, reps)


@register("Tile", 6)
def Tile(ctx: OpContext, x: TensorInfo, repeats: TensorInfo) -> Kernel:
    return _tile(x, ints(repeats, "repeats"))


# ------------------------------------------------------------------------ Range


def _range(start: TensorInfo, limit: TensorInfo, delta: TensorInfo, stash: Any = None) -> Kernel:
    dtype = same_dtype(start, limit, delta)
    s, l, d = (np.asarray(const(t, n)).reshape(-1)[0] for t, n in
               ((start, "start"), (limit, "limit"), (delta, "delta")))
    if d == 0:
        raise ShapeError("Range delta must not be 0")
    n = max(int(np.ceil((float(l) - float(s)) / float(d))), 0)
    work = np.dtype(stash) if stash is not None and dtype == np.float16 else dtype
    # start + i * delta, as the spec writes it, in the working precision.
    values = (work.type(s) + np.arange(n, dtype=work) * work.type(d)).astype(dtype)
    return Kernel([info(dtype, [n], value=values)])


@register("Range", 11)
def Range_11(ctx: OpContext, start: TensorInfo, limit: TensorInfo, delta: TensorInfo) -> Kernel:
    return _range(start, limit, delta)


@register("Range", 27)
def Range(ctx: OpContext, start: TensorInfo, limit: TensorInfo, delta: TensorInfo, *, stash_type: int = 1) -> Kernel:
    stash = {1: np.float32, 11: np.float64}.get(stash_type)
    if stash is None:
        raise ShapeError(f"stash_type {stash_type} is not FLOAT (1) or DOUBLE (11)")
    return _range(start, limit, delta, stash)


# ----------------------------------------------------------- DepthToSpace/SpaceToDepth


def _nchw(x: TensorInfo, b: int) -> tuple[int, int, int, int]:
    if len(x.shape) != 4 or b < 1:
        raise ShapeError(f"needs a 4-d NCHW input and blocksize >= 1, got {list(x.shape)} and {b}")
    n, c, h, w = x.dims
    return n, c, h, w


def _rearrange(x: TensorInfo, out_shape: list[int], src: list[int], perm: list[int], dst: list[int]) -> Kernel:
    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.copyto(outs[0].reshape(dst), ins[0].reshape(src).transpose(perm))

    return Kernel([info(x.dtype, out_shape)], run)


def _depth_to_space(x: TensorInfo, b: int, mode: str) -> Kernel:
    n, c, h, w = _nchw(x, b)
    if c % (b * b):
        raise ShapeError(f"channels {c} not divisible by blocksize^2 = {b * b}")
    oc = c // (b * b)
    if mode == "DCR":
        src, perm = [n, b, b, oc, h, w], [0, 3, 4, 1, 5, 2]
    elif mode == "CRD":
        src, perm = [n, oc, b, b, h, w], [0, 1, 4, 2, 5, 3]
    else:
        raise ShapeError(f"unknown mode {mode!r}; expected 'DCR' or 'CRD'")
    return _rearrange(x, [n, oc, h * b, w * b], src, perm, [n, oc, h, b, w, b])


def _space_to_depth(x: TensorInfo, b: int, mode: str) -> Kernel:
    n, c, h, w = _nchw(x, b)
    if h % b or w % b:
        raise ShapeError(f"spatial dims {h}x{w} not divisible by blocksize {b}")
    src = [n, c, h // b, b, w // b, b]
    if mode == "DCR":
        perm, dst = [0, 3, 5, 1, 2, 4], [n, b, b, c, h // b, w // b]
    elif mode == "CRD":
        perm, dst = [0, 1, 3, 5, 2, 4], [n, c, b, b, h // b, w // b]
    else:
        raise ShapeError(f"unknown mode {mode!r}; expected 'DCR' or 'CRD'")
    return _rearrange(x, [n, c * b * b, h // b, w // b], src, perm, dst)


@register("DepthToSpace", 1)
def DepthToSpace_1(ctx: OpContext, x: TensorInfo, *, blocksize: int) -> Kernel:
    return _depth_to_space(x, blocksize, "DCR")


@register("DepthToSpace", 11)
def DepthToSpace(ctx: OpContext, x: TensorInfo, *, blocksize: int, mode: str = "DCR") -> Kernel:
    return _depth_to_space(x, blocksize, mode)


@register("SpaceToDepth", 1)
def SpaceToDepth_1(ctx: OpContext, x: TensorInfo, *, blocksize: int) -> Kernel:
    return _space_to_depth(x, blocksize, "DCR")


@register("SpaceToDepth", 28)
def SpaceToDepth(ctx: OpContext, x: TensorInfo, *, blocksize: int, mode: str = "DCR") -> Kernel:
    return _space_to_depth(x, blocksize, mode)


# ---------------------------------------------------------------- Trilu/CumSum


def _scalar(ins: Any, i: int, known: int | None) -> int:
    return known if known is not None else int(np.asarray(ins[i]).reshape(-1)[0])


@register("Trilu", 14, inplace=True)
def Trilu(ctx: OpContext, x: TensorInfo, k: TensorInfo | None = None, *, upper: int = 1) -> Kernel:
    if len(x.shape) < 2:
        raise ShapeError(f"Trilu needs rank >= 2, got {list(x.shape)}")
    rows, cols = x.dims[-2], x.dims[-1]
    k_known = 0 if k is None else (ints(k, "k")[0] if k.value is not None else None)

    def zeroed(kk: int) -> np.ndarray:
        diff = np.arange(cols)[None, :] - np.arange(rows)[:, None]  # j - i
        return diff < kk if upper else diff > kk

    mask = None if k_known is None else zeroed(k_known)

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        m = mask if mask is not None else zeroed(_scalar(ins, 1, None))
        np.copyto(outs[0], ins[0])
        np.copyto(outs[0], 0, where=m)

    return Kernel([info(x.dtype, x.dims)], run, inplace=[(0, 0)])


@register("CumSum", 11, inplace=True)
def CumSum(ctx: OpContext, x: TensorInfo, axis: TensorInfo, *, exclusive: int = 0, reverse: int = 0) -> Kernel:
    rank = len(x.shape)
    known = norm_axis(ints(axis, "axis")[0], rank) if axis.value is not None else None

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        ax = known if known is not None else norm_axis(_scalar(ins, 1, None), rank)
        src, dst = ins[0], outs[0]
        if reverse:
            src, dst = np.flip(src, ax), np.flip(dst, ax)
        if not exclusive:
            np.cumsum(src, axis=ax, dtype=dst.dtype, out=dst)
            return
        head = (slice(None),) * ax
        np.cumsum(src[head + (slice(0, -1),)], axis=ax, dtype=dst.dtype, out=dst[head + (slice(1, None),)])
        dst[head + (slice(0, 1),)] = 0  # after the sum: in place, this slot still held input data

    return Kernel([info(x.dtype, x.dims)], run, inplace=[(0, 0)])
