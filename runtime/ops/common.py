"""Small helpers shared by kernels: shape arithmetic, constant inputs, dtype tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import TensorProto, helper

from ..errors import DataDependentShapeError, ShapeError
from ..ir import TensorInfo


def const(info: TensorInfo | None, what: str) -> np.ndarray:
    """The plan-time value of an input that must be known (a shape, axes, pads...)."""
    if info is None:
        raise ShapeError(f"input '{what}' is required")
    if info.value is None:
        err = DataDependentShapeError(
            f"input '{what}' must be a constant, computable from input shapes, or a small graph input"
        )
        err.info = info
        raise err
    return info.value


def ints(info: TensorInfo | None, what: str) -> list[int]:
    return [int(v) for v in np.asarray(const(info, what)).reshape(-1)]


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{what} {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    out = tuple(norm_axis(int(a), rank, "axes entry") for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axes {list(axes)}")
    return out


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError as e:
        raise ShapeError(f"shapes {[list(s) for s in shapes]} do not broadcast") from e


def info(dtype: Any, shape: Sequence[int], value: np.ndarray | None = None) -> TensorInfo:
    return TensorInfo(np.dtype(dtype), tuple(int(d) for d in shape), value)


def same_dtype(*infos: TensorInfo | None) -> np.dtype:
    dts = {i.dtype for i in infos if i is not None}
    if len(dts) != 1:
        raise ShapeError(f"inputs must share one dtype, got {sorted(str(d) for d in dts)}")
    return dts.pop()


def onnx_dtype(elem_type: int) -> np.dtype:
    """numpy dtype of an ONNX TensorProto elem_type."""
    if elem_type == TensorProto.BFLOAT16:
        raise ShapeError("bfloat16 is not supported")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError) as e:
        raise ShapeError(f"unsupported tensor element type {elem_type}") from e
    if dtype.kind in "OSUV" or dtype.names or dtype.metadata:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise ShapeError(f"tensor element type {name} is not supported")
    return dtype


def conv_out_dim(
    size: int, k: int, stride: int, dil: int, pad_begin: int, pad_end: int, ceil: bool = False
) -> int:
    """Output length of a sliding window; ``ceil`` follows ONNX/PyTorch pooling rules."""
    eff = dil * (k - 1) + 1
    span = size + pad_begin + pad_end - eff
    if span < 0:
        raise ShapeError(f"kernel extent {eff} is larger than padded input {size + pad_begin + pad_end}")
    if not ceil:
        return span // stride + 1
    n = -(-span // stride) + 1
    if (n - 1) * stride >= size + pad_begin:  # the last window must start inside input or left pad
        n -= 1
    return n


def auto_pads(
    auto_pad: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
) -> list[int]:
    """Explicit ONNX pads [b1..bn, e1..en] for an auto_pad setting."""
    n = len(spatial)
    if auto_pad in ("NOTSET", ""):
        p = list(pads) if pads else [0] * (2 * n)
        if len(p) != 2 * n:
            raise ShapeError(f"pads {p} must have {2 * n} entries")
        return p
    if auto_pad == "VALID":
        return [0] * (2 * n)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
            small, big = total // 2, total - total // 2
            b, e = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
            begins.append(b)
            ends.append(e)
        return begins + ends
    raise ShapeError(f"unknown auto_pad {auto_pad!r}")
