"""Softmax, LogSoftmax and Hardmax.

Before opset 13 the input is coerced to 2-D at ``axis`` ([prod(d[:axis]), prod(d[axis:])])
and the op runs over the second dimension; from 13 on it runs over ``axis`` alone.
Either way the input is viewed as (outer, n, inner) and reduced over the middle axis,
so no transpose is needed. Softmax subtracts the maximum first (numerically stable).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import info, norm_axis
from .registry import Kernel, OpContext, register


def _view(x: TensorInfo, axis: int, coerce_2d: bool, op: str) -> tuple[int, int, int]:
    if x.dtype.kind != "f":
        raise ShapeError(f"{op} needs a floating-point input, got {x.dtype}")
    shape = list(x.dims)
    rank = len(shape)
    if rank == 0:
        raise ShapeError(f"{op} needs an input of rank >= 1")
    ax = norm_axis(axis, rank)
    outer = int(np.prod(shape[:ax]))
    if coerce_2d:
        return outer, int(np.prod(shape[ax:])), 1
    return outer, shape[ax], int(np.prod(shape[ax + 1:]))


def _softmax(x: TensorInfo, axis: int, coerce_2d: bool) -> Kernel:
    v = _view(x, axis, coerce_2d, "Softmax")

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        xv, ov = ins[0].reshape(v), outs[0].reshape(v)
        m = xv.max(axis=1, keepdims=True)
        np.subtract(xv, m, out=ov)  # safe in place: m is read before x is overwritten
        np.exp(ov, out=ov)
        np.divide(ov, ov.sum(axis=1, keepdims=True), out=ov)

    return Kernel([info(x.dtype, x.dims)], run, inplace=[(0, 0)])


def _log_softmax(x: TensorInfo, axis: int, coerce_2d: bool) -> Kernel:
    v = _view(x, axis, coerce_2d, "LogSoftmax")

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        xv, ov, tmp = ins[0].reshape(v), outs[0].reshape(v), scr[0].reshape(v)
        np.subtract(xv, xv.max(axis=1, keepdims=True), out=ov)
        np.exp(ov, out=tmp)
        ov -= np.log(tmp.sum(axis=1, keepdims=True))

    return Kernel([info(x.dtype, x.dims)], run, scratch=[info(x.dtype, x.dims)], inplace=[(0, 0)])


def _hardmax(x: TensorInfo, axis: int, coerce_2d: bool) -> Kernel:
    v = _view(x, axis, coerce_2d, "Hardmax")

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        xv, ov = ins[0].reshape(v), outs[0].reshape(v)
        idx = xv.argmax(axis=1)[:, None, :]  # first maximum wins, as in ONNX
        ov[...] = 0
        np.put_along_axis(ov, idx, 1, axis=1)

    return Kernel([info(x.dtype, x.dims)], run, inplace=[(0, 0)])


@register("Softmax", 1)
def Softmax_1(ctx: OpContext, x: TensorInfo, *, axis: int = 1) -> Kernel:
    return _softmax(x, axis, coerce_2d=True)


@register("Softmax", 13)
def Softmax_13(ctx: OpContext, x: TensorInfo, *, axis: int = -1) -> Kernel:
    return _softmax(x, axis, coerce_2d=False)


@register("LogSoftmax", 1)
def LogSoftmax_1(ctx: OpContext, x: TensorInfo, *, axis: int = 1) -> Kernel:
    return _log_softmax(x, axis, coerce_2d=True)


@register("LogSoftmax", 13)
def LogSoftmax_13(ctx: OpContext, x: TensorInfo, *, axis: int = -1) -> Kernel:
    return _log_softmax(x, axis, coerce_2d=False)


@register("Hardmax", 1)
def Hardmax_1(ctx: OpContext, x: TensorInfo, *, axis: int = 1) -> Kernel:
    return _hardmax(x, axis, coerce_2d=True)


@register("Hardmax", 13)
def Hardmax_13(ctx: OpContext, x: TensorInfo, *, axis: int = -1) -> Kernel:
    return _hardmax(x, axis, coerce_2d=False)
