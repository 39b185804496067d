"""One registry of kernels keyed by op type, with opset variants.

A kernel is a *prepare* function named after its op type. It receives the input
``TensorInfo``s (concrete shapes, dtype, and ``value`` when the input is known at
plan time) and the ONNX attributes as keyword arguments with ONNX defaults, and
returns a :class:`Kernel`: the output infos, the scratch buffers it needs, and a
``run(ins, outs, scratch)`` function that writes into preallocated arrays.

    @register("Relu", inplace=True, fusable=False)
    def Relu(ctx, x):
        return Kernel([x.without_value()], lambda ins, outs, s: np.maximum(ins[0], 0, out=outs[0]),
                      inplace=[(0, 0)])

``resolve`` picks the newest registered version not above the model's opset, as
onnx's ReferenceEvaluator does. Kernels never copy large constants in prepare:
weights reach ``run`` through ``ins`` so the cache and mmap can serve them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Error, GraphError, KernelError, ShapeError, UnsupportedOperatorError
from ..ir import Node, TensorInfo, describe

# run(ins, outs, scratch). ins and outs hold None for omitted optional inputs and unused outputs.
RunFn = Callable[[Sequence[Any], Sequence[Any], Sequence[np.ndarray]], None]


@dataclass
class Kernel:
    """What one node needs at run time, decided once per input signature.

    - ``outputs``: one info per node output; an info with ``value`` set is known at
      plan time and the node needs no step for it.
    - ``run``: writes every non-alias output (None when all outputs are aliases or known).
    - ``scratch``: temporary buffers live only while this step runs (im2col, padded copies).
    - ``inplace``: (output, input) pairs whose buffers may be shared when the input dies here.
    - ``zero_init``: outputs that must start zeroed: the executor zeroes them ("memset" kernels).
    - ``alias``: output -> input whose buffer it views (Reshape and friends: no copy, no step).
    - ``bind``: optional; given a static plan's fixed arrays once, returns a run function for
      exactly those arrays, with every view and slice made up front (Conv's many tap copies).
      Dynamic plans, whose buffers change per inference, always call ``run``.
    """

    outputs: list[TensorInfo]
    run: RunFn | None = None
    scratch: list[TensorInfo] = field(default_factory=list)
    inplace: list[tuple[int, int]] = field(default_factory=list)
    zero_init: tuple[int, ...] = ()
    alias: dict[int, int] = field(default_factory=dict)
    bind: Callable[[Sequence[Any], Sequence[Any], Sequence[np.ndarray]], RunFn] | None = None


@dataclass
class OpContext:
    """What a prepare function may know besides its inputs and attributes."""

    node: Node
    opset: int
    activation: Callable[[np.ndarray], None] | None = None


@dataclass
class OpDef:
    op_type: str
    since: int
    prepare: Callable[..., Kernel]
    fusable: bool = False  # accepts a fused elementwise activation on output 0
    inplace: bool = False  # documentation only: typical in-place candidate
    attr_names: frozenset[str] = frozenset()
    required_attrs: frozenset[str] = frozenset()
    max_inputs: int | None = None
    min_inputs: int = 0


REGISTRY: dict[str, list[OpDef]] = {}
# Attributes that only ever carried hints for old frameworks; dropped before prepare.
IGNORED_ATTRS = frozenset({"consumed_inputs", "is_test"})


def register(
    op_type: str, since: int = 1, *, fusable: bool = False, inplace: bool = False
) -> Callable[[Callable[..., Kernel]], Callable[..., Kernel]]:
    """Register ``fn`` as the kernel of ``op_type`` from opset ``since`` on."""

    def deco(fn: Callable[..., Kernel]) -> Callable[..., Kernel]:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # skip ctx
        kw = [p for p in params if p.kind is p.KEYWORD_ONLY]
        pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
        opdef = OpDef(
            op_type=op_type,
            since=since,
            prepare=fn,
            fusable=fusable,
            inplace=inplace,
            attr_names=frozenset(p.name for p in kw),
            required_attrs=frozenset(p.name for p in kw if p.default is p.empty),
            max_inputs=None if variadic else len(pos),
            min_inputs=sum(1 for p in pos if p.default is p.empty),
        )
        versions = REGISTRY.setdefault(op_type, [])
        if any(v.since == since for v in versions):
            raise RuntimeError(f"{op_type} since opset {since} registered twice")
        versions.append(opdef)
        versions.sort(key=lambda v: v.since)
        return fn

    return deco


def supported_ops() -> list[str]:
    return sorted(REGISTRY)


def resolve(op_type: str, domain: str, opset: int, node_name: str) -> OpDef:
    """The newest kernel version of ``op_type`` not above ``opset``."""
    if domain not in ("", "ai.onnx"):
        raise UnsupportedOperatorError(
            op_type, domain, opset, node_name, "only the default ONNX domain is supported"
        )
    versions = REGISTRY.get(op_type)
    if not versions:
        raise UnsupportedOperatorError(op_type, domain, opset, node_name, "no kernel registered")
    chosen = None
    for v in versions:
        if v.since <= opset:
            chosen = v
    if chosen is None:
        raise UnsupportedOperatorError(
            op_type, domain, opset, node_name, f"kernels exist only from opset {versions[0].since}"
        )
    return chosen


def prepare(
    node: Node,
    inputs: Sequence[TensorInfo | None],
    opset: int,
    activation: Callable[[np.ndarray], None] | None = None,
) -> Kernel:
    """Prepare ``node`` for these input infos; every failure names the node."""
    opdef = resolve(node.op_type, node.domain, opset, node.name)
    attrs = {k: v for k, v in node.attrs.items() if k not in IGNORED_ATTRS}
    where = f"node '{node.name}' ({node.op_type}, opset {opset})"
    unknown = set(attrs) - opdef.attr_names
    if unknown:
        raise UnsupportedOperatorError(
            node.op_type, node.domain, opset, node.name,
            f"attribute(s) {describe(unknown)} not supported; known: {describe(opdef.attr_names)}",
        )
    missing = opdef.required_attrs - set(attrs)
    if missing:
        raise GraphError(f"{where} lacks required attribute(s) {describe(missing)}")
    ins = list(inputs)
    while ins and ins[-1] is None:  # trailing omitted optionals take the defaults
        ins.pop()
    if opdef.max_inputs is not None and len(ins) > opdef.max_inputs:
        raise GraphError(f"{where} has {len(ins)} inputs; at most {opdef.max_inputs} allowed")
    if len(ins) < opdef.min_inputs or any(i is None for i in ins[: opdef.min_inputs]):
        raise GraphError(f"{where} needs at least {opdef.min_inputs} inputs, got {len(ins)}")
    if activation is not None and not opdef.fusable:
        raise GraphError(f"{where} cannot take a fused activation")
    ctx = OpContext(node=node, opset=opset, activation=activation)
    try:
        kernel = opdef.prepare(ctx, *ins, **attrs)
    except Error as e:
        if where in str(e) or type(e).__init__ is not Exception.__init__:
            raise
        wrapped = type(e)(f"{where}: {e}")
        wrapped.__dict__.update(e.__dict__)  # keep details such as DataDependentShapeError.info
        raise wrapped from e
    except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
        raise ShapeError(f"{where}: {e}") from e
    if len(kernel.outputs) < len([o for o in node.outputs if o]):
        raise ShapeError(
            f"{where}: kernel produced {len(kernel.outputs)} outputs, node declares {len(node.outputs)}"
        )
    return kernel


def evaluate(kernel: Kernel, values: Sequence[np.ndarray | None], node: Node | None = None) -> list[np.ndarray]:
    """Run a prepared kernel now, allocating its outputs (constant folding, plan-time values).

    A failure that is not already a runtime ``Error`` becomes a KernelError naming ``node``,
    as the executor does at run time.
    """
    try:
        return _evaluate(kernel, values)
    except Error:
        raise
    except Exception as e:
        where = f"node '{node.name}' ({node.op_type})" if node is not None else "a kernel"
        raise KernelError(f"{where} failed at plan time: {type(e).__name__}: {e}") from e


def _evaluate(kernel: Kernel, values: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    outs: list[np.ndarray] = []
    for i, info in enumerate(kernel.outputs):
        if info.value is not None:
            outs.append(info.value)
        elif i in kernel.alias:
            src = values[kernel.alias[i]]
            assert src is not None
            outs.append(np.asarray(src).reshape(info.dims))
        elif i in kernel.zero_init:
            outs.append(np.zeros(info.dims, info.dtype))
        else:
            outs.append(np.empty(info.dims, info.dtype))
    if kernel.run is not None:
        scratch = [np.empty(s.dims, s.dtype) for s in kernel.scratch]
        kernel.run(values, outs, scratch)
    return outs
