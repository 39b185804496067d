"""Gemm and MatMul: one BLAS call into the planned output, transposes as views.

Both accept a fused activation (``fusable``), applied in place at the end of ``run``.
MatMul of a stacked left operand by a 2-D right operand is one GEMM over the
flattened rows, not a loop of small ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import broadcast, info, same_dtype
from .registry import Kernel, OpContext, register

# Gemm versions: 1 (legacy ``broadcast`` attribute), 7 (numpy-style broadcasting of C),
# 11 (C optional). Versions 6, 9 and 13 only widen the accepted types.


def _gemm(
    ctx: OpContext, a: TensorInfo, b: TensorInfo, c: TensorInfo | None, alpha: float, beta: float,
    trans_a: int, trans_b: int, legacy_broadcast: int | None = None,
) -> Kernel:
    dtype = same_dtype(a, b)
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise ShapeError(f"Gemm needs 2-D A and B, got {list(a.shape)} and {list(b.shape)}")
    (a0, a1), (b0, b1) = a.dims, b.dims
    m, k = (a1, a0) if trans_a else (a0, a1)
    k2, n = (b1, b0) if trans_b else (b0, b1)
    if k != k2:
        raise ShapeError(f"Gemm inner dimensions differ: op(A) is [{m},{k}], op(B) is [{k2},{n}]")
    shape = (m, n)
    use_c = c is not None and beta != 0
    scratch: list[TensorInfo] = []
    if c is not None:
        if legacy_broadcast == 0 and tuple(c.shape) != shape:
            raise ShapeError(f"C {list(c.shape)} must be {list(shape)} when broadcast=0")
        if len(c.shape) > 2 or broadcast(c.dims, shape) != shape:
            raise ShapeError(f"C {list(c.shape)} does not broadcast to the output {list(shape)}")
        if use_c and beta != 1:
            scratch.append(info(dtype, c.dims))
    act = ctx.activation

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        o = outs[0]
        av = ins[0].T if trans_a else ins[0]
        bv = ins[1].T if trans_b else ins[1]
        np.matmul(av, bv, out=o)  # transposed views are BLAS-able: no copy
        if alpha != 1:
            np.multiply(o, alpha, out=o, casting="unsafe")
        if use_c:
            cv = ins[2]
            if beta != 1:
                np.multiply(cv, beta, out=scr[0], casting="unsafe")
                cv = scr[0]
            o += cv
        if act is not None:
            act(o)

    return Kernel([info(dtype, shape)], run, scratch=scratch)


@register("Gemm", 1, fusable=True)
def Gemm_1(
    ctx: OpContext, a: TensorInfo, b: TensorInfo, c: TensorInfo, *, alpha: float = 1.0,
    beta: float = 1.0, broadcast: int = 0, transA: int = 0, transB: int = 0,
) -> Kernel:
    return _gemm(ctx, a, b, c, alpha, beta, transA, transB, legacy_broadcast=broadcast)


@register("Gemm", 7, fusable=True)
def Gemm_7(
    ctx: OpContext, a: TensorInfo, b: TensorInfo, c: TensorInfo, *, alpha: float = 1.0,
    beta: float = 1.0, transA: int = 0, transB: int = 0,
) -> Kernel:
    return _gemm(ctx, a, b, c, alpha, beta, transA, transB)


@register("Gemm", 11, fusable=True)
def Gemm_11(
    ctx: OpContext, a: TensorInfo, b: TensorInfo, c: TensorInfo | None = None, *, alpha: float = 1.0,
    beta: float = 1.0, transA: int = 0, transB: int = 0,
) -> Kernel:
    return _gemm(ctx, a, b, c, alpha, beta, transA, transB)


def matmul_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """numpy.matmul's output shape (1-D operands promoted, then their axis dropped)."""
    if not a or not b:
        raise ShapeError(f"MatMul operands must have rank >= 1, got {list(a)} and {list(b)}")
    a2 = tuple(a) if len(a) > 1 else (1, a[0])
    b2 = tuple(b) if len(b) > 1 else (b[0], 1)
    if a2[-1] != b2[-2]:
        raise ShapeError(f"MatMul inner dimensions differ: {list(a)} @ {list(b)}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    return tuple(int(d) for d in out)


@register("MatMul", 1, fusable=True)
def MatMul(ctx: OpContext, a: TensorInfo, b: TensorInfo) -> Kernel:
    """Numpy-semantics MatMul (versions 9 and 13 only widen types)."""
    dtype = same_dtype(a, b)
    shape = matmul_shape(a.dims, b.dims)
    act = ctx.activation
    # [..., M, K] @ [K, N]: fold the leading axes into M for one large GEMM.
    flat = len(a.shape) > 2 and len(b.shape) == 2
    k = a.dims[-1]
    rows = int(np.prod(shape[:-1])) if flat else 0

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        x, o = ins[0], outs[0]
        if flat and x.flags.c_contiguous and o.flags.c_contiguous:
            np.matmul(x.reshape(rows, k), ins[1], out=o.reshape(rows, -1))
        else:
            np.matmul(x, ins[1], out=o)
        if act is not None:
            act(o)

    return Kernel([info(dtype, shape)], run)
