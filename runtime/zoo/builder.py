"""An exporter-style graph builder shared by the zoo generators.

Names follow ``torch.onnx.export``: node ``/scope/Op`` (``/scope/Op_1`` for the next one),
its outputs ``/scope/Op_output_0``, parameters ``scope.weight``. Weights come from one seeded
numpy Generator drawn in construction order, never from the input size, so the same seed gives
the same weights at every resolution and the same options give byte-identical models. They are
uniform with the wanted standard deviation (kaiming_uniform-style): float32 uniforms are several
times faster to draw than normals, which is most of u2net's generation time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
PRODUCER = "memgate.zoo"
FORMAT = "1"  # bump when a generator's output changes on purpose
META_NAME, META_OPTIONS = "memgate.zoo.name", "memgate.zoo.options"
Shape = Sequence["int | str"]


class Builder:
    """Accumulates nodes, initializers and graph inputs/outputs for one model."""

    def __init__(self, name: str, *, opset: int, seed: int) -> None:
        self.name, self.opset = name, opset
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.params: list[tuple[str, np.ndarray]] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: Counter[str] = Counter()
        self._anon = 0

    # ---------------------------------------------------------------- graph I/O
    def input(self, name: str, shape: Shape, dtype: int = FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        return name

    def output(self, name: str, shape: Shape | None, dtype: int = FLOAT) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape)))

    # ------------------------------------------------------------------- nodes
    def op(self, op_type: str, inputs: Sequence[str], scope: str = "", *, out: str | None = None,
           n_out: int = 1, **attrs: Any) -> str:
        """Add one node; returns its (first) output name. ``out`` names a graph output directly."""
        base = f"{scope}/{op_type}"
        k = self._used[base]
        self._used[base] += 1
        node_name = base if k == 0 else f"{base}_{k}"
        outputs = [out] if out is not None else [f"{node_name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0]

    def const(self, value: Any, scope: str = "", dtype: type | None = None) -> str:
        """A Constant node, as exporters emit for scalars, indices and shape pieces."""
        arr = np.asarray(value, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.op("Constant", [], scope, value=numpy_helper.from_array(arr))

    def param(self, name: str, array: np.ndarray) -> str:
        """An initializer."""
        self.params.append((name, np.ascontiguousarray(array)))
        return name

    def anon(self, op_type: str) -> str:
        """An exporter-style anonymous parameter name (``onnx::MatMul_7``)."""
        self._anon += 1
        return f"onnx::{op_type}_{self._anon}"

    def normal(self, shape: Sequence[int], std: float) -> np.ndarray:
        """Zero-mean weights with standard deviation ``std`` (uniform on +-sqrt(3)*std)."""
        return self.uniform(shape, -math.sqrt(3.0) * std, math.sqrt(3.0) * std)

    def uniform(self, shape: Sequence[int], low: float, high: float) -> np.ndarray:
        x = self.rng.random(tuple(shape), dtype=np.float32)
        x *= np.float32(high - low)
        x += np.float32(low)
        return x

    # ------------------------------------------------------ opset-aware pieces
    def unsqueeze(self, x: str, axes: Sequence[int], scope: str = "") -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", [x, self.const(np.array(axes, np.int64), scope)], scope)
        return self.op("Unsqueeze", [x], scope, axes=list(axes))

    def reduce_mean(self, x: str, axes: Sequence[int], scope: str = "") -> str:
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.const(np.array(axes, np.int64), scope)], scope, keepdims=1)
        return self.op("ReduceMean", [x], scope, axes=list(axes), keepdims=1)

    def dims(self, x: str, indices: Sequence[int], scope: str = "") -> list[str]:
        """Shape -> Gather(i) -> Unsqueeze per dim: the 1-element pieces exporters concatenate."""
        shape = self.op("Shape", [x], scope)
        return [self.unsqueeze(self.op("Gather", [shape, self.const(np.int64(i), scope)], scope, axis=0), [0], scope)
                for i in indices]

    # ------------------------------------------------------------ layer blocks
    def conv(self, x: str, scope: str, cin: int, cout: int, k: int, *, stride: int = 1, pad: int = 0,
             dilation: int = 1, group: int = 1, bias: bool = True, gain: float = 2.0, out: str | None = None) -> str:
        """Conv with He-style weights (``gain`` 2 before a ReLU, 1 before a linear use)."""
        fan_in = cin // group * k * k
        w = self.param(f"{scope}.weight", self.normal((cout, cin // group, k, k), math.sqrt(gain / fan_in)))
        ins = [x, w]
        if bias:
            bound = 1.0 / math.sqrt(fan_in)
            ins.append(self.param(f"{scope}.bias", self.uniform((cout,), -bound, bound)))
        return self.op("Conv", ins, f"/{scope.replace('.', '/')}", out=out, dilations=[dilation] * 2, group=group,
                       kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2)

    def batchnorm(self, x: str, scope: str, c: int, gamma: tuple[float, float] = (0.8, 1.2)) -> str:
        """Inference BatchNormalization with sane random statistics (variance near 1)."""
        ins = [x]
        for part, arr in (("weight", self.uniform((c,), *gamma)), ("bias", self.normal((c,), 0.1)),
                          ("running_mean", self.normal((c,), 0.1)), ("running_var", self.uniform((c,), 0.8, 1.2))):
            ins.append(self.param(f"{scope}.{part}", arr))
        return self.op("BatchNormalization", ins, f"/{scope.replace('.', '/')}", epsilon=1e-5, momentum=0.9)

    def gemm(self, x: str, scope: str, cin: int, cout: int, *, std: float | None = None, out: str | None = None) -> str:
        """A 2-D nn.Linear as torch exports it: Gemm(transB=1) with an (out, in) weight."""
        std = math.sqrt(1.0 / cin) if std is None else std
        w = self.param(f"{scope}.weight", self.normal((cout, cin), std))
        b = self.param(f"{scope}.bias", self.normal((cout,), 0.01))
        return self.op("Gemm", [x, w, b], f"/{scope.replace('.', '/')}", out=out, alpha=1.0, beta=1.0, transB=1)

    # ------------------------------------------------------------------- model
    def model(self, doc: str, options: dict[str, Any]) -> onnx.ModelProto:
        """The ModelProto, built in place: helper.make_graph/make_model would copy every weight twice."""
        opsets = [helper.make_opsetid("", self.opset)]
        model = onnx.ModelProto(ir_version=helper.find_min_ir_version_for(opsets), producer_name=PRODUCER,
                                producer_version=FORMAT, doc_string=doc)
        model.opset_import.extend(opsets)
        graph = model.graph
        graph.name = self.name
        graph.node.extend(self.nodes)
        graph.input.extend(self.inputs)
        graph.output.extend(self.outputs)
        for name, array in self.params:
            tensor = graph.initializer.add()
            tensor.name, tensor.data_type = name, helper.np_dtype_to_tensor_dtype(array.dtype)
            tensor.dims.extend(array.shape)
            tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        helper.set_model_props(model, {META_NAME: self.name, META_OPTIONS: json.dumps(options, sort_keys=True)})
        return model


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    """An image size given as one int or (height, width)."""
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


def check_opset(opset: int, low: int, high: int = 21) -> None:
    from ..errors import ConfigError

    if not low <= opset <= high:
        raise ConfigError(f"opset {opset} is outside the supported range {low}..{high} for this model")
