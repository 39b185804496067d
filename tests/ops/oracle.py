"""Oracle helpers for kernel tests: run one-node models through the runtime and a trusted peer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import runtime as rt


def node_model(
    op: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] = ("y",), *, opset: int = 17,
    initializers: dict[str, np.ndarray] | None = None, **attrs: Any,
) -> onnx.ModelProto:
    """A model with one node; ``inputs`` become graph inputs, ``initializers`` constants.

    Input names may be '' to leave an optional input out.
    """
    initializers = initializers or {}
    names = list(inputs) + [k for k in initializers if k not in inputs]
    node = helper.make_node(op, names, list(outputs), **attrs)
    g_inputs = [
        helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for k, v in inputs.items() if k
    ]
    g_outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs if o]
    inits = [numpy_helper.from_array(v, k) for k, v in initializers.items()]
    graph = helper.make_graph([node], f"{op}_test", g_inputs, g_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    try:  # give outputs their types: onnxruntime refuses UNDEFINED
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        model.graph.ClearField("output")
        model.graph.output.extend(inferred.graph.output)
    except Exception:  # noqa: BLE001  (tests of invalid models build them anyway)
        pass
    return model


def run_runtime(model: onnx.ModelProto, feeds: dict[str, np.ndarray], mode: str = "default") -> list[np.ndarray]:
    compiled = rt.Core(compile_threads=1).compile_model(model, memory_mode=mode)
    out = compiled.infer({k: v for k, v in feeds.items() if k})
    return [out[o.name] for o in model.graph.output]


def run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    return list(ReferenceEvaluator(model).run(None, {k: v for k, v in feeds.items() if k}))


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return list(sess.run(None, {k: v for k, v in feeds.items() if k}))


def assert_matches(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, oracle: str = "ort",
                   rtol: float = 1e-4, atol: float = 1e-5, modes: Sequence[str] = rt.MEMORY_MODES) -> None:
    """The runtime agrees with the oracle in every memory mode, and the modes agree bit for bit."""
    expected = run_ort(model, feeds) if oracle == "ort" else run_reference(model, feeds)
    first = None
    for mode in modes:
        got = run_runtime(model, feeds, mode)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == np.asarray(e).shape, (mode, g.shape, np.asarray(e).shape)
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"mode {mode}")
        if first is None:
            first = got
        else:
            for g, f in zip(got, first):
                np.testing.assert_array_equal(g, f, err_msg=f"mode {mode} differs from {modes[0]}")
