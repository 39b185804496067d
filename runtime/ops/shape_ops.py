"""Shape kernels: views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) and plan-time values.

View-like ops return ``alias={0: 0}`` and no run function: the output is the input's
buffer under another shape, so they cost neither a step nor memory. Shape, Size,
Constant and ConstantOfShape are known without data: their outputs carry ``value``
so Shape -> Gather -> Concat -> Reshape chains fold at plan time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import KernelError, ShapeError
from ..ir import TensorInfo
from .common import info, ints, norm_axes
from .registry import Kernel, OpContext, register


def _view(x: TensorInfo, shape: Sequence[int]) -> Kernel:
    """Output 0 is input 0 under ``shape``: no step, no copy."""
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"cannot view {list(x.shape)} ({x.size} elements) as {list(shape)}")
    return Kernel([info(x.dtype, shape)], None, alias={0: 0})


# ---------------------------------------------------------------------- Reshape


def reshape_shape(in_shape: Sequence[int], shape: Sequence[int], allowzero: int = 0) -> list[int]:
    """ONNX Reshape target: 0 copies the input dim (unless ``allowzero``), one -1 is inferred."""
    out: list[int] = []
    infer = -1
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ShapeError(f"shape {list(shape)}: 0 at position {i} has no input dim to copy "
                                 f"(input rank {len(in_shape)})")
            d = in_shape[i]
        elif d == -1:
            if infer >= 0:
                raise ShapeError(f"shape {list(shape)} has more than one -1")
            infer = i
        elif d < -1:
            raise ShapeError(f"shape {list(shape)} has a negative dim other than -1")
        out.append(int(d))
    total = int(np.prod(in_shape, dtype=np.int64))
    if infer >= 0:
        if allowzero and 0 in shape:
            raise ShapeError(f"shape {list(shape)} has both 0 and -1 with allowzero=1")
        rest = int(np.prod([d for i, d in enumerate(out) if i != infer], dtype=np.int64))
        if rest == 0 or total % rest:
            raise ShapeError(f"cannot infer the -1 of {list(shape)} for input {list(in_shape)}")
        out[infer] = total // rest
    if int(np.prod(out, dtype=np.int64)) != total:
        raise ShapeError(f"cannot reshape {list(in_shape)} ({total} elements) to {list(shape)}")
    return out


@register("Reshape", 1)
def Reshape_1(ctx: OpContext, data: TensorInfo, *, shape: list[int] | None = None) -> Kernel:
    if shape is None:
        raise ShapeError("Reshape-1 needs the 'shape' attribute")
    return _view(data, reshape_shape(data.dims, shape))


@register("Reshape", 5)
def Reshape(ctx: OpContext, data: TensorInfo, shape: TensorInfo, *, allowzero: int = 0) -> Kernel:
    # allowzero exists from opset 14; before, it is absent and 0 always copies.
    return _view(data, reshape_shape(data.dims, ints(shape, "shape"), allowzero))


@register("Flatten", 1)
def Flatten(ctx: OpContext, x: TensorInfo, *, axis: int = 1) -> Kernel:
    rank = len(x.shape)
    if not -rank <= axis <= rank:
        raise ShapeError(f"axis {axis} out of range [-{rank}, {rank}]")
    if axis < 0:
        axis += rank
    shape = x.dims
    return _view(x, [int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))])


# ------------------------------------------------------------ Squeeze/Unsqueeze


def _squeeze(x: TensorInfo, axes: Sequence[int] | None) -> Kernel:
    shape = list(x.dims)
    if axes is None or len(axes) == 0:
        keep = [d for d in shape if d != 1]
    else:
        drop = norm_axes(axes, len(shape))
        for a in drop:
            if shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of size {shape[a]} in {shape}")
        keep = [d for i, d in enumerate(shape) if i not in drop]
    return _view(x, keep)


def _unsqueeze(x: TensorInfo, axes: Sequence[int]) -> Kernel:
    rank = len(x.shape) + len(axes)
    where = norm_axes(axes, rank)
    dims = iter(x.dims)
    return _view(x, [1 if i in where else next(dims) for i in range(rank)])


@register("Squeeze", 1)
def Squeeze_1(ctx: OpContext, x: TensorInfo, *, axes: list[int] | None = None) -> Kernel:
    return _squeeze(x, axes)


@register("Squeeze", 13)
def Squeeze(ctx: OpContext, x: TensorInfo, axes: TensorInfo | None = None) -> Kernel:
    return _squeeze(x, None if axes is None else ints(axes, "axes"))


@register("Unsqueeze", 1)
def Unsqueeze_1(ctx: OpContext, x: TensorInfo, *, axes: list[int]) -> Kernel:
    return _unsqueeze(x, axes)


@register("Unsqueeze", 13)
def Unsqueeze(ctx: OpContext, x: TensorInfo, axes: TensorInfo) -> Kernel:
    return _unsqueeze(x, ints(axes, "axes"))


# ------------------------------------------------------------ Identity/Dropout


@register("Identity", 1)
def Identity(ctx: OpContext, x: TensorInfo) -> Kernel:
    return _view(x, x.dims)


def _dropout(ctx: OpContext, x: TensorInfo, mask_dtype: Any) -> Kernel:
    """Inference Dropout: output 0 views the input; a requested mask is all ones."""
    k = _view(x, x.dims)
    outs = ctx.node.outputs
    if len(outs) < 2 or not outs[1]:
        return k

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        outs[1].fill(1)

    return Kernel([k.outputs[0], info(mask_dtype, x.dims)], run, alias={0: 0})


# Versions 1 and 6 differ only in is_test/consumed_inputs (dropped by the registry), 7 only
# removes is_test: in inference all three pass the data through with a mask of dtype T.
@register("Dropout", 1)
def Dropout_1(ctx: OpContext, x: TensorInfo, *, ratio: float = 0.5) -> Kernel:
    return _dropout(ctx, x, x.dtype)


@register("Dropout", 10)
def Dropout_10(ctx: OpContext, x: TensorInfo, *, ratio: float = 0.5) -> Kernel:
    return _dropout(ctx, x, np.bool_)


def _first(a: Any) -> Any:
    return np.asarray(a).reshape(-1)[0]


@register("Dropout", 12)
def Dropout(
    ctx: OpContext, x: TensorInfo, ratio: TensorInfo | None = None, training_mode: TensorInfo | None = None,
    *, seed: int | None = None,
) -> Kernel:
    if training_mode is None:
        return _dropout(ctx, x, np.bool_)
    # Training with ratio 0 drops nothing, so it is still deterministic and allowed.
    refusal = "training-mode Dropout (random masks) is not supported; this runtime infers only"
    if training_mode.value is not None and (ratio is None or ratio.value is not None):
        p = 0.5 if ratio is None else float(_first(ratio.value))
        if bool(_first(training_mode.value)) and p != 0:
            raise ShapeError(refusal)
        return _dropout(ctx, x, np.bool_)
    # Mode fed at run time (graphs exported for training and inference): copy, and check per run.
    where = f"node '{ctx.node.name}' (Dropout)"
    has_ratio = ratio is not None
    outs = [info(x.dtype, x.dims)]
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        outs.append(info(np.bool_, x.dims))

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        p = float(_first(ins[1])) if has_ratio else 0.5
        if bool(_first(ins[2])) and p != 0:
            raise KernelError(f"{where}: {refusal}")
        np.copyto(outs[0], ins[0])
        if len(outs) > 1 and outs[1] is not None:
            outs[1].fill(True)

    return Kernel(outs, run, inplace=[(0, 0)])


# ------------------------------------------------------------ plan-time values


@register("Shape", 1)
def Shape(ctx: OpContext, x: TensorInfo, *, start: int = 0, end: int | None = None) -> Kernel:
    # start/end exist from opset 15; Python slicing clamps exactly as the spec asks.
    dims = np.array(x.shape[start:end], np.int64)
    return Kernel([info(np.int64, dims.shape, value=dims)])


@register("Size", 1)
def Size(ctx: OpContext, x: TensorInfo) -> Kernel:
    return Kernel([info(np.int64, (), value=np.array(x.size, np.int64))])


@register("Constant", 1)
def Constant(
    ctx: OpContext, *, value: np.ndarray | None = None, sparse_value: Any = None,
    value_float: float | None = None, value_floats: list[float] | None = None,
    value_int: int | None = None, value_ints: list[int] | None = None,
    value_string: str | None = None, value_strings: list[str] | None = None,
) -> Kernel:
    # One version for all: later opsets only add value_* spellings of the same thing.
    if sparse_value is not None:
        raise ShapeError("Constant with sparse_value is not supported")
    if value_string is not None or value_strings is not None:
        raise ShapeError("Constant with a string value is not supported (no string tensors)")
    given = [(k, v) for k, v in (
        ("value", value), ("value_float", value_float), ("value_floats", value_floats),
        ("value_int", value_int), ("value_ints", value_ints),
    ) if v is not None]
    if len(given) != 1:
        raise ShapeError(f"Constant needs exactly one value attribute, got {[k for k, _ in given] or 'none'}")
    name, v = given[0]
    dtype = {"value_float": np.float32, "value_floats": np.float32,
             "value_int": np.int64, "value_ints": np.int64}.get(name)
    arr = np.asarray(v) if dtype is None else np.asarray(v, dtype)
    return Kernel([info(arr.dtype, arr.shape, value=arr)])


@register("ConstantOfShape", 9)
def ConstantOfShape(ctx: OpContext, shape: TensorInfo, *, value: np.ndarray | None = None) -> Kernel:
    dims = ints(shape, "input")
    if any(d < 0 for d in dims):
        raise ShapeError(f"negative dims in shape {dims}")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value)
    if fill.size != 1:
        raise ShapeError(f"value must have one element, got shape {list(fill.shape)}")
    arr = np.full(dims, fill.reshape(-1)[0], fill.dtype)
    return Kernel([info(arr.dtype, arr.shape, value=arr)])
