"""ONNX ModelProto -> runtime IR graph."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from ..errors import GraphError, ModelLoadError, ShapeError, UnsupportedOperatorError
from ..ir import Dim, Graph, Node, TensorInfo, ValueInfo, describe, unique_name
from ..ops.common import onnx_dtype
from .loader import Model, load_external

MAX_OPSET = 21


def default_opset(proto: onnx.ModelProto) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    if proto.ir_version < 3:
        return 1
    raise ModelLoadError("the model imports no version of the default ONNX domain")


def tensor_to_array(t: TensorProto, model: Model, mmap: bool) -> np.ndarray:
    where = f"tensor '{t.name}'"
    if t.data_location == TensorProto.EXTERNAL:
        return load_external(t, model.base_dir, mmap)
    try:
        onnx_dtype(t.data_type)
        arr = numpy_helper.to_array(t)
    except ShapeError as e:
        raise ModelLoadError(f"{where}: {e}") from e
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ModelLoadError(f"{where}: cannot decode initializer data ({e}); missing or truncated data?") from e
    if arr.dtype.kind in "OSU":
        raise ModelLoadError(f"{where}: string tensors are not supported")
    return np.require(arr, requirements="C")  # ascontiguousarray would turn scalars into shape (1,)


def attribute_value(a: AttributeProto, model: Model, node: str, op: str, opset: int) -> Any:
    kind = a.type
    if a.ref_attr_name:
        raise UnsupportedOperatorError(op, "", opset, node, f"attribute '{a.name}' refers to a function attribute")
    if kind == AttributeProto.FLOAT:
        return float(a.f)
    if kind == AttributeProto.INT:
        return int(a.i)
    if kind == AttributeProto.STRING:
        return a.s.decode("utf-8", "replace")
    if kind == AttributeProto.TENSOR:
        return tensor_to_array(a.t, model, mmap=False)
    if kind == AttributeProto.FLOATS:
        return [float(v) for v in a.floats]
    if kind == AttributeProto.INTS:
        return [int(v) for v in a.ints]
    if kind == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if kind == AttributeProto.UNDEFINED:
        # Very old models omit the type; infer it from the filled field.
        for field_name, conv in (("f", float), ("i", int)):
            if a.HasField(field_name):
                return conv(getattr(a, field_name))
        if a.ints:
            return [int(v) for v in a.ints]
        if a.floats:
            return [float(v) for v in a.floats]
        if a.HasField("s"):
            return a.s.decode("utf-8", "replace")
    raise UnsupportedOperatorError(
        op, "", opset, node, f"attribute '{a.name}' of type {AttributeProto.AttributeType.Name(kind)} "
        "(subgraphs and sparse tensors are not supported)"
    )


def value_info(vi: onnx.ValueInfoProto, what: str) -> TensorInfo:
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        if vi.type.WhichOneof("value") is None:
            return TensorInfo(np.dtype(np.float32), ())
        raise ModelLoadError(f"{what} '{vi.name}' has a non-tensor type; only tensors are supported")
    try:
        dtype = onnx_dtype(tt.elem_type) if tt.elem_type else np.dtype(np.float32)
    except ShapeError as e:
        raise ModelLoadError(f"{what} '{vi.name}': {e}") from e
    dims: list[Dim] = []
    if tt.HasField("shape"):
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        return TensorInfo(dtype, tuple(dims))
    return TensorInfo(dtype, (None,))  # rank unknown: refined at plan time


def to_graph(
    model: Model, *, mmap: bool = True, ignore_input_with_initializer: bool = True, pool: Executor | None = None,
) -> Graph:
    """Build the IR graph; check that every node input is defined.

    Initializers are decoded on ``pool`` when given (compile_threads).
    """
    if model.proto is None and model.path is not None:
        model.reload()  # released after an earlier compile (reduce_constant): read the file again
    proto = model.proto
    if proto is None:
        raise ModelLoadError("the model's protobuf was released and it has no file to read again")
    g = proto.graph
    opset = default_opset(proto)
    for t in g.initializer:
        if not t.name:
            raise GraphError("an initializer has no name")
    inits = list(g.initializer)
    if pool is not None and len(inits) > 1:
        arrays = list(pool.map(lambda t: tensor_to_array(t, model, mmap), inits))
    else:
        arrays = [tensor_to_array(t, model, mmap) for t in inits]
    constants: dict[str, np.ndarray] = {t.name: a for t, a in zip(inits, arrays)}
    if g.sparse_initializer:
        raise ModelLoadError("sparse initializers are not supported")

    inputs: list[ValueInfo] = []
    defaults: dict[str, np.ndarray] = {}
    seen_inputs: set[str] = set()
    for vi in g.input:
        if vi.name in seen_inputs:
            raise GraphError(f"graph input '{vi.name}' is declared twice")
        seen_inputs.add(vi.name)
        if vi.name in constants:
            if ignore_input_with_initializer:
                continue  # treated as a constant
            defaults[vi.name] = constants.pop(vi.name)
        inputs.append(ValueInfo(vi.name, value_info(vi, "graph input")))

    taken: set[str] = set()
    nodes: list[Node] = []
    for i, n in enumerate(g.node):
        name = unique_name(n.name or f"{n.op_type}_{i}", taken)
        attrs = {a.name: attribute_value(a, model, name, n.op_type, opset) for a in n.attribute}
        nodes.append(Node(name, n.op_type, list(n.input), list(n.output), attrs, n.domain))

    defined: dict[str, str] = {}
    for name in list(constants) + [v.name for v in inputs]:
        defined[name] = "graph"
    for n in nodes:
        for out in n.outputs:
            if not out:
                continue
            if out in defined:
                raise GraphError(f"'{out}' is defined twice (node '{n.name}' and {defined[out]})")
            defined[out] = f"node '{n.name}'"
    for n in nodes:
        for name in n.inputs:
            if name and name not in defined:
                raise GraphError(
                    f"node '{n.name}' ({n.op_type}) reads '{name}', which no node, graph input or "
                    f"initializer defines (missing initializer?); known: {describe(defined)}"
                )
    outputs = []
    for vi in g.output:
        if vi.name not in defined:
            raise GraphError(f"graph output '{vi.name}' is not produced by any node, input or initializer")
        outputs.append(ValueInfo(vi.name, value_info(vi, "graph output")))
    return Graph(nodes=nodes, inputs=inputs, outputs=outputs, constants=constants, opset=opset,
                 name=g.name or model.name, defaults=defaults)
