"""Reductions (ReduceSum, ReduceMean, ReduceMax... ten ops) and Einsum.

Every reduction runs in keepdims form on a view of the preallocated output, so
``keepdims=0`` costs nothing. Axes come from an attribute before opset 13 (ReduceSum)
or 18 (the others) and from a plan-time input after. An empty axes list reduces
everything, unless ``noop_with_empty_axes``: then pure reductions are views of their
input and composite ones (L1, L2, LogSum, ...) keep only their elementwise part.
Reductions over empty sets give the identity of the operation (0, 1, -inf, +inf).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ShapeError
from ..ir import TensorInfo
from .common import broadcast, info, ints, norm_axes, same_dtype
from .registry import Kernel, OpContext, register

Axes = tuple[int, ...]
ReduceFn = Callable[[np.ndarray, Axes, np.ndarray], None]


def _extreme(dtype: np.dtype, high: bool) -> Any:
    """The identity of max (``high=False``) or min (``high=True``) reductions."""
    if dtype == np.bool_:
        return high
    if dtype.kind == "f":
        return np.inf if high else -np.inf
    lim = np.iinfo(dtype)
    return lim.max if high else lim.min


def _into(o: np.ndarray, value: ArrayLike) -> None:
    np.copyto(o, value, casting="unsafe")


def _sum(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.sum(a, axis=axes, dtype=o.dtype, out=o, keepdims=True)


def _mean(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    # Sum then divide: np.mean warns on empty sets, where ONNX simply gives NaN.
    n = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    if o.dtype in (np.float32, np.float64):
        np.sum(a, axis=axes, dtype=o.dtype, out=o, keepdims=True)
        np.divide(o, o.dtype.type(n), out=o)
    else:  # float16 accumulates in float32; integer means truncate, as onnxruntime does
        acc = np.float32 if o.dtype.kind == "f" else np.float64
        _into(o, np.sum(a, axis=axes, dtype=acc, keepdims=True) / acc(n))


def _max(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.maximum.reduce(a, axis=axes, out=o, keepdims=True, initial=_extreme(a.dtype, False))


def _min(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.minimum.reduce(a, axis=axes, out=o, keepdims=True, initial=_extreme(a.dtype, True))


def _prod(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.prod(a, axis=axes, dtype=o.dtype, out=o, keepdims=True)


def _l1(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.sum(np.abs(a), axis=axes, dtype=o.dtype, out=o, keepdims=True)


def _sum_square(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    np.sum(np.square(a), axis=axes, dtype=o.dtype, out=o, keepdims=True)


def _l2(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    if o.dtype.kind == "f":
        _sum_square(a, axes, o)
        np.sqrt(o, out=o)
    else:
        _into(o, np.sqrt(np.sum(np.square(a.astype(np.float64)), axis=axes, keepdims=True)))


def _log_sum(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    if o.dtype.kind == "f":
        _sum(a, axes, o)
        np.log(o, out=o)
    else:
        _into(o, np.log(np.sum(a, axis=axes, dtype=np.float64, keepdims=True)))


def _log_sum_exp(a: np.ndarray, axes: Axes, o: np.ndarray) -> None:
    # Shift by the maximum so large inputs do not overflow exp; empty or all -inf sets shift by 0.
    af = a if a.dtype.kind == "f" else a.astype(np.float64)
    m = np.maximum.reduce(af, axis=axes, keepdims=True, initial=-np.inf)
    m[~np.isfinite(m)] = 0
    s = np.sum(np.exp(af - m), axis=axes, keepdims=True)
    _into(o, np.log(s) + m)


REDUCERS: dict[str, tuple[ReduceFn, bool]] = {  # name -> (function, pure: a no-op on empty axes)
    "ReduceSum": (_sum, True), "ReduceMean": (_mean, True), "ReduceMax": (_max, True),
    "ReduceMin": (_min, True), "ReduceProd": (_prod, True), "ReduceL1": (_l1, False),
    "ReduceL2": (_l2, False), "ReduceSumSquare": (_sum_square, False),
    "ReduceLogSum": (_log_sum, False), "ReduceLogSumExp": (_log_sum_exp, False),
}


def reduce_kernel(name: str, x: TensorInfo, axes: Sequence[int] | None, keepdims: int, noop: int) -> Kernel:
    fn, pure = REDUCERS[name]
    rank = len(x.shape)
    if axes:
        red = norm_axes(axes, rank)
    elif noop:
        if pure:
            return Kernel([info(x.dtype, x.dims)], None, alias={0: 0})
        red = ()
    else:
        red = tuple(range(rank))
    keep = [1 if i in red else d for i, d in enumerate(x.dims)]
    shape = keep if keepdims else [d for i, d in enumerate(x.dims) if i not in red]

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        with np.errstate(all="ignore"):
            fn(ins[0], red, outs[0].reshape(keep))

    return Kernel([info(x.dtype, shape)], run)


def _reduce_ops(name: str, input_since: int) -> None:
    def with_attr(ctx: OpContext, x: TensorInfo, *, axes: list[int] | None = None, keepdims: int = 1) -> Kernel:
        return reduce_kernel(name, x, axes, keepdims, 0)

    def with_input(ctx: OpContext, x: TensorInfo, axes: TensorInfo | None = None, *, keepdims: int = 1,
                   noop_with_empty_axes: int = 0) -> Kernel:
        return reduce_kernel(name, x, None if axes is None else ints(axes, "axes"), keepdims, noop_with_empty_axes)

    with_attr.__name__ = with_input.__name__ = name
    register(name, 1)(with_attr)
    register(name, input_since)(with_input)


for _name in REDUCERS:
    _reduce_ops(_name, 13 if _name == "ReduceSum" else 18)


# ----------------------------------------------------------------------- Einsum


def einsum_shape(equation: str, shapes: Sequence[Sequence[int]]) -> list[int]:
    """Output shape of an einsum equation (explicit '->' or numpy's implicit output)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"equation {equation!r} has {len(terms)} operands, got {len(shapes)} inputs")
    dims: dict[str, int] = {}
    counts: Counter[str] = Counter()
    ellipses: list[Sequence[int]] = []
    for term, shape in zip(terms, shapes):
        if term.count("...") > 1:
            raise ShapeError(f"term {term!r} has more than one ellipsis")
        pre, _, post = term.partition("...")
        n_ell = len(shape) - len(pre) - len(post) if "..." in term else 0
        if n_ell < 0 or ("..." not in term and len(term) != len(shape)):
            raise ShapeError(f"term {term!r} does not fit an input of shape {list(shape)}")
        if "..." in term:
            ellipses.append(shape[len(pre):len(pre) + n_ell])
        labelled = list(zip(pre, shape[:len(pre)])) + list(zip(post, shape[len(shape) - len(post):]))
        for c, d in labelled:
            if not c.isalpha():
                raise ShapeError(f"bad label {c!r} in {equation!r}")
            counts[c] += 1
            if dims.setdefault(c, int(d)) != int(d):
                raise ShapeError(f"label {c!r} has sizes {dims[c]} and {d} in {equation!r}")
    ell = list(broadcast(*ellipses)) if ellipses else []
    if not arrow:
        rhs = ("..." if ellipses else "") + "".join(sorted(c for c, n in counts.items() if n == 1))
    out: list[int] = []
    pre, has_ell, post = rhs.partition("...")
    for c in pre + post:
        if c not in dims:
            raise ShapeError(f"output label {c!r} does not appear in the inputs of {equation!r}")
    out = [dims[c] for c in pre] + (ell if has_ell else []) + [dims[c] for c in post]
    return out


@register("Einsum", 12)
def Einsum(ctx: OpContext, *xs: TensorInfo, equation: str) -> Kernel:
    if not xs or any(x is None for x in xs):
        raise ShapeError("Einsum needs at least one input and no omitted inputs")
    dtype = same_dtype(*xs)
    shape = einsum_shape(equation, [x.dims for x in xs])
    eq = equation.replace(" ", "")
    optimize = len(xs) > 1  # lets numpy hand pairwise contractions to BLAS

    def run(ins: Any, outs: Any, scratch: Any) -> None:
        np.einsum(eq, *ins, out=outs[0], optimize=optimize)

    return Kernel([info(dtype, shape)], run)
