"""Indexing kernels: Gather, GatherElements, GatherND, Scatter*, OneHot, TopK, ArgMax/ArgMin.

Index tensors are data, read in ``run``; only sizes that define output shapes (OneHot's
depth, TopK's k) must be known at plan time. Out-of-range indices raise IndexError in
``run``, which the executor reports as a KernelError naming the node. Scatter kernels
copy data into the output and scatter there, so they may run in place on ``data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import const, info, ints, norm_axis, same_dtype
from .registry import Kernel, OpContext, register


def _check_range(idx: np.ndarray, n: int, what: str) -> None:
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"{what} out of range [-{n}, {n - 1}]: min {idx.min()}, max {idx.max()}")


def _indices(x: TensorInfo, what: str = "indices") -> None:
    if x.dtype.kind not in "iu":
        raise ShapeError(f"{what} must be integers, got {x.dtype}")


# ----------------------------------------------------------------------- Gather


@register("Gather", 1)
def Gather(ctx: OpContext, data: TensorInfo, indices: TensorInfo, *, axis: int = 0) -> Kernel:
    _indices(indices)
    rank = len(data.shape)
    ax = norm_axis(axis, rank)
    n = data.dims[ax]
    shape = list(data.dims[:ax]) + list(indices.dims) + list(data.dims[ax + 1:])

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        _check_range(ins[1], n, "Gather indices")
        # mode="wrap" only skips numpy's buffered bounds check: the range is checked above.
        np.take(ins[0], ins[1], axis=ax, out=outs[0], mode="wrap")

    return Kernel([info(data.dtype, shape)], run)


@register("GatherElements", 11)
def GatherElements(ctx: OpContext, data: TensorInfo, indices: TensorInfo, *, axis: int = 0) -> Kernel:
    _indices(indices)
    rank = len(data.shape)
    if len(indices.shape) != rank:
        raise ShapeError(f"indices rank {len(indices.shape)} differs from data rank {rank}")
    ax = norm_axis(axis, rank)
    if any(i > d for a, (i, d) in enumerate(zip(indices.dims, data.dims)) if a != ax):
        raise ShapeError(f"indices {list(indices.shape)} exceed data {list(data.shape)} outside axis {ax}")
    # take_along_axis broadcasts the other axes; ONNX reads only the leading block of them.
    block = tuple(slice(None) if a == ax else slice(0, i) for a, i in enumerate(indices.dims))
    n = data.dims[ax]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        _check_range(ins[1], n, "GatherElements indices")
        np.copyto(outs[0], np.take_along_axis(ins[0][block], ins[1], axis=ax))

    return Kernel([info(data.dtype, indices.dims)], run)


def _nd_index(data_shape: tuple[int, ...], indices: np.ndarray, b: int) -> tuple[Any, ...]:
    """Advanced index into ``data`` reshaped to (B, ...) for GatherND/ScatterND rows."""
    k = indices.shape[-1]
    bsize = int(np.prod(data_shape[:b], dtype=np.int64))
    rows = indices.reshape(bsize, -1, k)
    for j in range(k):
        _check_range(rows[..., j], data_shape[b + j], f"index component {j}")
    batch = np.arange(bsize).reshape(bsize, 1)
    return (batch,) + tuple(rows[..., j] for j in range(k))


@register("GatherND", 11)
def GatherND(ctx: OpContext, data: TensorInfo, indices: TensorInfo, *, batch_dims: int = 0) -> Kernel:
    _indices(indices)
    b = int(batch_dims)
    dshape = data.dims
    ishape = indices.dims
    if not ishape or b < 0 or b >= min(len(dshape), len(ishape)) or dshape[:b] != ishape[:b]:
        raise ShapeError(f"data {list(dshape)} and indices {list(ishape)} do not fit batch_dims={b}")
    k = ishape[-1]
    if b + k > len(dshape):
        raise ShapeError(f"index tuples of length {k} exceed data rank {len(dshape)} after {b} batch dims")
    shape = list(ishape[:-1]) + list(dshape[b + k:])
    flat = (int(np.prod(dshape[:b], dtype=np.int64)),) + dshape[b:]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        picked = ins[0].reshape(flat)[_nd_index(dshape, ins[1], b)]
        np.copyto(outs[0], picked.reshape(shape))

    return Kernel([info(data.dtype, shape)], run)


# ---------------------------------------------------------------------- Scatter

_REDUCE: dict[str, np.ufunc | None] = {
    "none": None, "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
}


def _reduction(reduction: str, allowed: tuple[str, ...]) -> np.ufunc | None:
    if reduction not in allowed:
        raise ShapeError(f"reduction {reduction!r} not supported in this opset; expected one of {list(allowed)}")
    return _REDUCE[reduction]


def _scatter_elements(data: TensorInfo, indices: TensorInfo, updates: TensorInfo, axis: int,
                      ufunc: np.ufunc | None) -> Kernel:
    _indices(indices)
    same_dtype(data, updates)
    rank = len(data.shape)
    if len(indices.shape) != rank or tuple(indices.shape) != tuple(updates.shape):
        raise ShapeError(f"indices {list(indices.shape)} and updates {list(updates.shape)} must match, "
                         f"with the rank of data {list(data.shape)}")
    ax = norm_axis(axis, rank)
    n = data.dims[ax]
    # Open-mesh coordinates of every update along the other axes.
    grid = np.ogrid[tuple(slice(0, d) for d in indices.dims)]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        o = outs[0]
        np.copyto(o, ins[0])
        idx = ins[1]
        _check_range(idx, n, "scatter indices")
        where = tuple(idx if a == ax else g for a, g in enumerate(grid))
        if ufunc is None:
            o[where] = ins[2]
        else:
            ufunc.at(o, where, ins[2])

    return Kernel([info(data.dtype, data.dims)], run, inplace=[(0, 0)])


@register("Scatter", 9, inplace=True)
def Scatter(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *, axis: int = 0) -> Kernel:
    return _scatter_elements(data, indices, updates, axis, None)


@register("ScatterElements", 11, inplace=True)
def ScatterElements_11(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *,
                       axis: int = 0) -> Kernel:
    return _scatter_elements(data, indices, updates, axis, None)


@register("ScatterElements", 16, inplace=True)
def ScatterElements_16(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *,
                       axis: int = 0, reduction: str = "none") -> Kernel:
    return _scatter_elements(data, indices, updates, axis, _reduction(reduction, ("none", "add", "mul")))


@register("ScatterElements", 18, inplace=True)
def ScatterElements(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *,
                    axis: int = 0, reduction: str = "none") -> Kernel:
    return _scatter_elements(data, indices, updates, axis, _reduction(reduction, tuple(_REDUCE)))


def _scatter_nd(data: TensorInfo, indices: TensorInfo, updates: TensorInfo,
                ufunc: np.ufunc | None) -> Kernel:
    _indices(indices)
    same_dtype(data, updates)
    dshape = data.dims
    ishape = indices.dims
    if not ishape or ishape[-1] > len(dshape):
        raise ShapeError(f"indices {list(ishape)} do not index data {list(dshape)}")
    k = ishape[-1]
    want = ishape[:-1] + dshape[k:]
    if tuple(updates.shape) != want:
        raise ShapeError(f"updates shape {list(updates.shape)} should be {list(want)}")
    flat = (1,) + dshape
    rows = (1, int(np.prod(ishape[:-1], dtype=np.int64))) + dshape[k:]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        o = outs[0]
        np.copyto(o, ins[0])
        where = _nd_index(dshape, ins[1], 0)
        upd = ins[2].reshape(rows)
        if ufunc is None:
            o.reshape(flat)[where] = upd
        else:
            ufunc.at(o.reshape(flat), where, upd)

    return Kernel([info(data.dtype, data.dims)], run, inplace=[(0, 0)])


@register("ScatterND", 11, inplace=True)
def ScatterND_11(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo) -> Kernel:
    return _scatter_nd(data, indices, updates, None)


@register("ScatterND", 16, inplace=True)
def ScatterND_16(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *,
                 reduction: str = "none") -> Kernel:
    return _scatter_nd(data, indices, updates, _reduction(reduction, ("none", "add", "mul")))


@register("ScatterND", 18, inplace=True)
def ScatterND(ctx: OpContext, data: TensorInfo, indices: TensorInfo, updates: TensorInfo, *,
              reduction: str = "none") -> Kernel:
    return _scatter_nd(data, indices, updates, _reduction(reduction, tuple(_REDUCE)))


# ----------------------------------------------------------------------- OneHot


@register("OneHot", 9)
def OneHot(ctx: OpContext, indices: TensorInfo, depth: TensorInfo, values: TensorInfo, *, axis: int = -1) -> Kernel:
    d = int(np.asarray(const(depth, "depth")).reshape(-1)[0])  # depth may be a float tensor
    if d < 1:
        raise ShapeError(f"depth must be positive, got {d}")
    if tuple(values.shape) not in ((2,), (1, 2), (2, 1)):
        raise ShapeError(f"values must hold [off, on], got shape {list(values.shape)}")
    rank = len(indices.shape)
    ax = norm_axis(axis, rank + 1)
    shape = list(indices.dims)
    shape.insert(ax, d)
    classes = np.arange(d).reshape([d if i == ax else 1 for i in range(rank + 1)])

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        idx = np.expand_dims(ins[0].astype(np.int64), ax)
        idx = np.where(idx < 0, idx + d, idx)  # [-depth, -1] counts from the end; others stay off
        off, on = ins[2].reshape(-1)
        np.copyto(outs[0], off)
        np.copyto(outs[0], on, where=idx == classes)

    return Kernel([info(values.dtype, shape)], run)


# ------------------------------------------------------------------ TopK/ArgMax


def _topk(ctx: OpContext, x: TensorInfo, k: int, axis: int, largest: int, sorted_: int) -> Kernel:
    rank = len(x.shape)
    ax = norm_axis(axis, rank)
    n = x.dims[ax]
    if not 0 <= k <= n:
        raise ShapeError(f"k={k} out of range for axis {ax} of size {n}")
    shape = list(x.dims)
    shape[ax] = k
    head = (slice(None),) * ax + (slice(0, k),)

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        a = ins[0]
        # A stable ascending sort of an order-reversing key keeps the lower index first on ties
        # (~ reverses integers and bools without overflow; floats negate).
        key = a if not largest else (-a if a.dtype.kind in "fc" else ~a)
        order = np.argsort(key, axis=ax, kind="stable")[head]
        if outs[0] is not None:
            np.copyto(outs[0], np.take_along_axis(a, order, axis=ax))
        if len(outs) > 1 and outs[1] is not None:
            np.copyto(outs[1], order)

    return Kernel([info(x.dtype, shape), info(np.int64, shape)], run)


@register("TopK", 1)
def TopK_1(ctx: OpContext, x: TensorInfo, *, k: int, axis: int = -1) -> Kernel:
    return _topk(ctx, x, k, axis, 1, 1)


@register("TopK", 10)
def TopK_10(ctx: OpContext, x: TensorInfo, k: TensorInfo, *, axis: int = -1) -> Kernel:
    return _topk(ctx, x, ints(k, "K")[0], axis, 1, 1)


@register("TopK", 11)
def TopK(ctx: OpContext, x: TensorInfo, k: TensorInfo, *, axis: int = -1, largest: int = 1,
         sorted: int = 1) -> Kernel:  # noqa: A002
    return _topk(ctx, x, ints(k, "K")[0], axis, largest, sorted)


def _arg(x: TensorInfo, fn: Callable[..., Any], axis: int, keepdims: int, last: int) -> Kernel:
    rank = len(x.shape)
    ax = norm_axis(axis, rank)
    n = x.dims[ax]
    if n == 0:
        raise ShapeError(f"cannot take an arg-extremum over empty axis {ax}")
    shape = list(x.dims)
    if keepdims:
        shape[ax] = 1
    else:
        del shape[ax]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        a = ins[0]
        if last:  # the first hit in the flipped array is the last one in the original
            r = fn(np.flip(a, ax), axis=ax, keepdims=bool(keepdims))
            np.subtract(n - 1, r, out=outs[0], casting="unsafe")
        else:
            np.copyto(outs[0], fn(a, axis=ax, keepdims=bool(keepdims)), casting="unsafe")

    return Kernel([info(np.int64, shape)], run)


def _arg_ops(name: str, fn: Callable[..., Any]) -> None:
    def v1(ctx: OpContext, x: TensorInfo, *, axis: int = 0, keepdims: int = 1) -> Kernel:
        return _arg(x, fn, axis, keepdims, 0)

    def v12(ctx: OpContext, x: TensorInfo, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0) -> Kernel:
        return _arg(x, fn, axis, keepdims, select_last_index)

    v1.__name__ = v12.__name__ = name
    register(name, 1)(v1)
    register(name, 12)(v12)


_arg_ops("ArgMax", np.argmax)
_arg_ops("ArgMin", np.argmin)
