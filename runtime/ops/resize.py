"""Resize (opsets 10, 11, 13, 18, 19) and Upsample (1, 7, 9): nearest, linear and cubic.

Interpolation is separable, so prepare builds, for each resized axis, an index array
and (for linear/cubic) a weight array of shape (taps, out): output position o along
the axis is ``sum_t w[t, o] * x[idx[t, o]]``. ``run`` applies one axis after another
with ``np.take(..., out=)`` into planned scratch, a loop over taps only; shrinking axes
go first so later passes touch less data. Coordinates follow onnx's reference
implementation (which the conformance data comes from); indices are clamped to the
edge, tf_crop_and_resize positions outside the input get ``extrapolation_value``.
Nearest resizes by integer factors that reduce to ``o // f`` are one broadcast copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import const, info, norm_axes
from .registry import Kernel, OpContext, register

COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@dataclass
class AxisPlan:
    axis: int
    out: int
    index: np.ndarray  # (taps, out) source positions, clamped
    weight: np.ndarray | None  # (taps, out); None for nearest
    outside: np.ndarray  # output positions that take the extrapolation value


def source_coords(coord: str, out_len: int, in_len: int, scale: float, roi: tuple[float, float]) -> np.ndarray:
    """Input coordinate of every output position along one axis (onnx reference formulas)."""
    y = np.arange(out_len, dtype=np.float64)
    out_f = scale * in_len  # the reference uses the unrounded output length
    if coord == "align_corners":
        return np.zeros(out_len) if out_f == 1 else y * (in_len - 1) / (out_f - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_crop_and_resize":
        if out_f == 1:
            x = np.full(out_len, (roi[1] - roi[0]) * (in_len - 1) / 2)
        else:
            x = y * (roi[1] - roi[0]) * (in_len - 1) / (out_f - 1)
        return x + roi[0] * (in_len - 1)
    if coord == "pytorch_half_pixel":
        return np.full(out_len, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5
    if coord == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if coord == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_f)
        return offset + (y + 0.5) / scale - 0.5
    raise ShapeError(f"unknown coordinate_transformation_mode {coord!r}; expected one of {list(COORD_MODES)}")


def _cubic(d: np.ndarray, a: float) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def axis_plan(
    axis: int, in_len: int, out_len: int, scale: float, *, mode: str, coord: str, nearest: str,
    cubic_a: float = -0.75, exclude_outside: int = 0, antialias: int = 0, roi: tuple[float, float] = (0.0, 1.0),
) -> AxisPlan | None:
    """Indices and weights for one axis; None when the axis is left unchanged."""
    if in_len < 1 and out_len > 0:
        raise ShapeError(f"cannot resize an empty axis {axis} to {out_len}")
    x = source_coords(coord, out_len, in_len, scale, roi)
    outside = np.flatnonzero((x < 0) | (x > in_len - 1)) if coord == "tf_crop_and_resize" else np.zeros(0, np.intp)
    if out_len == in_len and not outside.size and np.array_equal(x, np.arange(in_len)):
        return None
    if mode == "nearest":
        if nearest == "simple":  # Resize-10 / Upsample (onnxruntime): floor up, ceil down
            nearest = "ceil" if scale < 1 else "floor"
        rounded = {"round_prefer_floor": np.ceil(x - 0.5), "round_prefer_ceil": np.floor(x + 0.5),
                   "floor": np.floor(x), "ceil": np.ceil(x)}[nearest]
        idx = np.clip(rounded, 0, in_len - 1).astype(np.intp)[None, :]
        return AxisPlan(axis, out_len, idx, None, outside)
    # base + i for taps i in [first, first + n): the reference prefers the left pixel, so an
    # integer coordinate x uses base x - 1 and ratio 1.
    floor = np.floor(x)
    base = np.where(x == floor, floor - 1, floor)
    ratio = x - base
    support = 1 if mode == "linear" else 2
    s = min(scale, 1.0) if antialias else 1.0
    first = int(np.floor(-support / s) + 1)
    taps = np.arange(first, 2 - first)[:, None]
    d = (taps - ratio[None, :]) * s
    w = np.clip(1 - np.abs(d), 0, 1) if mode == "linear" else _cubic(d, cubic_a)
    idx = base[None, :].astype(np.int64) + taps
    if antialias:
        w = w / w.sum(axis=0, keepdims=True)
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        total = w.sum(axis=0, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return AxisPlan(axis, out_len, np.clip(idx, 0, in_len - 1).astype(np.intp), w, outside)


def _broadcast_copy(x: TensorInfo, plans: Sequence[AxisPlan]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(source view, output view) shapes when every axis is nearest ``o // f``; else None."""
    by_axis = {p.axis: p for p in plans}
    src, dst = [], []
    for a, n in enumerate(x.dims):
        p = by_axis.get(a)
        if p is None:
            src.append(n)
            dst.append(n)
            continue
        if p.weight is not None or p.outside.size or n == 0 or p.out % n:
            return None
        f = p.out // n
        if not np.array_equal(p.index[0], np.arange(p.out) // f):
            return None
        src += [n, 1]
        dst += [n, f]
    return tuple(src), tuple(dst)


def resize_kernel(x: TensorInfo, out_shape: Sequence[int], plans: list[AxisPlan], extrapolation: float) -> Kernel:
    """The kernel applying per-axis ``plans`` (already built) to produce ``out_shape``."""
    out_shape = tuple(int(d) for d in out_shape)
    dtype = x.dtype
    interp = any(p.weight is not None for p in plans)
    if interp and dtype.kind != "f":
        raise ShapeError(f"linear and cubic resize need a floating-point input, got {dtype}")
    if not plans:
        return Kernel([info(dtype, out_shape)], lambda ins, outs, scr: np.copyto(outs[0], ins[0]), inplace=[(0, 0)])
    views = _broadcast_copy(x, plans)
    if views is not None:
        src_v, dst_v = views

        def run_copy(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
            np.copyto(outs[0].reshape(dst_v), ins[0].reshape(src_v))

        return Kernel([info(dtype, out_shape)], run_copy)
    shape = list(x.dims)
    plans = sorted(plans, key=lambda p: (p.out / max(shape[p.axis], 1), p.axis))  # shrink first
    shapes = []
    for p in plans:
        shape[p.axis] = p.out
        shapes.append(tuple(shape))
    scratch = [info(dtype, s) for s in shapes[:-1]]
    tmp_i = len(scratch)
    if interp:
        scratch.append(info(dtype, [max(int(np.prod(s)) for s in shapes)]))
    rank = len(shape)
    weights = [None if p.weight is None else
               [w.astype(dtype).reshape((-1,) + (1,) * (rank - p.axis - 1)) for w in p.weight] for p in plans]
    fills = [(slice(None),) * p.axis + (p.outside,) for p in plans if p.outside.size]
    fill = np.asarray(extrapolation).astype(dtype) if dtype.kind == "f" else extrapolation

    def run(ins: Sequence[Any], outs: Sequence[np.ndarray], scr: Sequence[np.ndarray]) -> None:
        src = ins[0]
        for j, (p, ws) in enumerate(zip(plans, weights)):
            dst = outs[0] if j == len(plans) - 1 else scr[j]
            if ws is None:
                np.take(src, p.index[0], axis=p.axis, out=dst, mode="clip")
            else:
                tmp = scr[tmp_i][: dst.size].reshape(dst.shape)
                for t, w in enumerate(ws):
                    np.take(src, p.index[t], axis=p.axis, out=tmp, mode="clip")
                    if t == 0:
                        np.multiply(tmp, w, out=dst)
                    else:
                        tmp *= w
                        dst += tmp
            src = dst
        for sl in fills:
            outs[0][sl] = fill

    return Kernel([info(dtype, out_shape)], run, scratch=scratch)


# ------------------------------------------------------------------------ Resize


def _floats(t: TensorInfo | None, what: str) -> list[float] | None:
    if t is None:
        return None
    v = np.asarray(const(t, what)).reshape(-1)
    return None if v.size == 0 else [float(s) for s in v]


def _resize(
    x: TensorInfo, roi: TensorInfo | None, scales: TensorInfo | None, sizes: TensorInfo | None, *,
    mode: str, coord: str, nearest: str, cubic_a: float = -0.75, exclude_outside: int = 0,
    extrapolation: float = 0.0, antialias: int = 0, axes: list[int] | None = None, policy: str = "stretch",
) -> Kernel:
    if mode not in ("nearest", "linear", "cubic"):
        raise ShapeError(f"unknown mode {mode!r}; expected nearest, linear or cubic")
    if nearest not in NEAREST_MODES and nearest != "simple":  # "simple": Resize-10's internal rule
        raise ShapeError(f"unknown nearest_mode {nearest!r}; expected one of {list(NEAREST_MODES)}")
    if coord not in COORD_MODES:
        raise ShapeError(f"unknown coordinate_transformation_mode {coord!r}; expected one of {list(COORD_MODES)}")
    if antialias and mode == "nearest":
        raise ShapeError("antialias is not defined for mode 'nearest'")
    shape = list(x.dims)
    rank = len(shape)
    ax = list(range(rank)) if axes is None else list(norm_axes(axes, rank))
    sc, sz = _floats(scales, "scales"), _floats(sizes, "sizes")
    if (sc is None) == (sz is None):
        raise ShapeError("exactly one of 'scales' and 'sizes' must be given (the other empty or omitted)")
    given = sc if sc is not None else sz
    assert given is not None
    if len(given) != len(ax):
        raise ShapeError(f"{'scales' if sc is not None else 'sizes'} has {len(given)} entries; expected {len(ax)}")
    scale = [1.0] * rank
    out = list(shape)
    if sc is not None:
        if min(sc) <= 0:
            raise ShapeError(f"scales {sc} must be positive")
        for a, s in zip(ax, sc):
            scale[a], out[a] = s, int(np.floor(s * shape[a]))
    else:
        if min(given) < 0:
            raise ShapeError(f"sizes {given} must not be negative")
        for a, s in zip(ax, given):
            out[a] = int(s)
            scale[a] = s / shape[a] if shape[a] else 1.0
        if policy not in ("stretch", "not_larger", "not_smaller"):
            raise ShapeError(f"unknown keep_aspect_ratio_policy {policy!r}")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(scale[a] for a in ax)
            for a in ax:
                scale[a], out[a] = s, int(s * shape[a] + 0.5)
    roi_v = _floats(roi, "roi") if coord == "tf_crop_and_resize" else None
    roi_pairs = {a: (0.0, 1.0) for a in range(rank)}
    if roi_v is not None:
        if len(roi_v) != 2 * len(ax):
            raise ShapeError(f"roi has {len(roi_v)} entries; expected {2 * len(ax)}")
        for i, a in enumerate(ax):
            roi_pairs[a] = (roi_v[i], roi_v[i + len(ax)])
    plans = []
    for a in ax:
        p = axis_plan(a, shape[a], out[a], scale[a], mode=mode, coord=coord, nearest=nearest, cubic_a=cubic_a,
                      exclude_outside=exclude_outside, antialias=antialias, roi=roi_pairs[a])
        if p is not None:
            plans.append(p)
    return resize_kernel(x, out, plans, extrapolation)


@register("Resize", 10)
def Resize_10(ctx: OpContext, x: TensorInfo, scales: TensorInfo, *, mode: str = "nearest") -> Kernel:
    """Asymmetric coordinates; nearest rounds down when enlarging, up when shrinking (as onnxruntime)."""
    return _resize(x, None, scales, None, mode=mode, coord="asymmetric", nearest="simple")


@register("Resize", 11)
def Resize_11(
    ctx: OpContext, x: TensorInfo, roi: TensorInfo | None = None, scales: TensorInfo | None = None,
    sizes: TensorInfo | None = None, *, coordinate_transformation_mode: str = "half_pixel",
    cubic_coeff_a: float = -0.75, exclude_outside: int = 0, extrapolation_value: float = 0.0,
    mode: str = "nearest", nearest_mode: str = "round_prefer_floor",
) -> Kernel:
    """Versions 11 and 13 (13 makes roi and scales optional)."""
    return _resize(x, roi, scales, sizes, mode=mode, coord=_no_symmetric(coordinate_transformation_mode),
                   nearest=nearest_mode, cubic_a=cubic_coeff_a, exclude_outside=exclude_outside,
                   extrapolation=extrapolation_value)


def _no_symmetric(coord: str) -> str:
    if coord == "half_pixel_symmetric":
        raise ShapeError("coordinate_transformation_mode 'half_pixel_symmetric' needs opset 19")
    return coord


@register("Resize", 18)
def Resize_18(
    ctx: OpContext, x: TensorInfo, roi: TensorInfo | None = None, scales: TensorInfo | None = None,
    sizes: TensorInfo | None = None, *, antialias: int = 0, axes: list[int] | None = None,
    coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0, extrapolation_value: float = 0.0, keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest", nearest_mode: str = "round_prefer_floor",
) -> Kernel:
    """Version 18: antialias, axes and keep_aspect_ratio_policy."""
    return _resize(x, roi, scales, sizes, mode=mode, coord=_no_symmetric(coordinate_transformation_mode),
                   nearest=nearest_mode, cubic_a=cubic_coeff_a, exclude_outside=exclude_outside,
                   extrapolation=extrapolation_value, antialias=antialias, axes=axes,
                   policy=keep_aspect_ratio_policy)


@register("Resize", 19)
def Resize_19(
    ctx: OpContext, x: TensorInfo, roi: TensorInfo | None = None, scales: TensorInfo | None = None,
    sizes: TensorInfo | None = None, *, antialias: int = 0, axes: list[int] | None = None,
    coordinate_transformation_mode: str = "half_pixel", cubic_coeff_a: float = -0.75,
    exclude_outside: int = 0, extrapolation_value: float = 0.0, keep_aspect_ratio_policy: str = "stretch",
    mode: str = "nearest", nearest_mode: str = "round_prefer_floor",
) -> Kernel:
    """Versions 19 and later: adds coordinate_transformation_mode 'half_pixel_symmetric'."""
    return _resize(x, roi, scales, sizes, mode=mode, coord=coordinate_transformation_mode,
                   nearest=nearest_mode, cubic_a=cubic_coeff_a, exclude_outside=exclude_outside,
                   extrapolation=extrapolation_value, antialias=antialias, axes=axes,
                   policy=keep_aspect_ratio_policy)


# ---------------------------------------------------------------------- Upsample


def _upsample(x: TensorInfo, scales: Sequence[float], mode: str) -> Kernel:
    mode = "linear" if mode == "bilinear" else mode
    if mode not in ("nearest", "linear"):
        raise ShapeError(f"unknown Upsample mode {mode!r}; expected nearest or linear")
    if len(scales) != len(x.shape):
        raise ShapeError(f"scales {list(scales)} must have one entry per input axis ({len(x.shape)})")
    if min(scales) <= 0:
        raise ShapeError(f"scales {list(scales)} must be positive")
    shape = list(x.dims)
    out = [int(np.floor(s * n)) for s, n in zip(scales, shape)]
    plans = []
    for a, (n, o, s) in enumerate(zip(shape, out, scales)):
        p = axis_plan(a, n, o, float(s), mode=mode, coord="asymmetric", nearest="simple")
        if p is not None:
            plans.append(p)
    return resize_kernel(x, out, plans, 0.0)


@register("Upsample", 1)
def Upsample_1(ctx: OpContext, x: TensorInfo, *, height_scale: float, width_scale: float,
               mode: str = "nearest") -> Kernel:
    """Experimental version 1: NCHW input, height and width scales as attributes."""
    if len(x.shape) != 4:
        raise ShapeError(f"Upsample-1 needs a 4-D input, got {list(x.shape)}")
    return _upsample(x, [1.0, 1.0, height_scale, width_scale], mode)


@register("Upsample", 7)
def Upsample_7(ctx: OpContext, x: TensorInfo, *, scales: list[float], mode: str = "nearest") -> Kernel:
    return _upsample(x, scales, mode)


@register("Upsample", 9)
def Upsample_9(ctx: OpContext, x: TensorInfo, scales: TensorInfo, *, mode: str = "nearest") -> Kernel:
    """Version 9: scales become an input (it must be known at plan time)."""
    return _upsample(x, [float(s) for s in np.asarray(const(scales, "scales")).reshape(-1)], mode)
