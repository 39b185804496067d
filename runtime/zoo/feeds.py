"""Deterministic sample feeds for any model's graph inputs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..errors import InputError
from .builder import META_NAME


def sample_feeds(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Seeded random floats for zoo-generated models, onnx's arange feed for others; see zoo.sample_inputs.

    Integer inputs read by a Gather from a constant table get ids below its row count (token ids
    within the vocabulary); integer inputs named like a mask get ones with a padded (zero) tail per
    row; other integers are zeros, booleans ones. Symbolic dims are taken as 1, as onnx's runner does.
    """
    graph = model.graph
    generated = any(p.key == META_NAME for p in model.metadata_props)
    inits = {t.name: tuple(t.dims) for t in graph.initializer}
    rows = {n.input[1]: inits[n.input[0]][0] for n in graph.node
            if n.op_type == "Gather" and len(n.input) == 2 and n.input[0] in inits and inits[n.input[0]]}
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in graph.input:
        if value.name in inits:
            continue
        if not value.type.HasField("tensor_type"):
            raise InputError(f"input '{value.name}' is not a tensor; sample_inputs makes tensor feeds only")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim)
        n = int(np.prod(shape, dtype=np.int64))
        data: np.ndarray
        if dtype.kind == "f":
            data = rng.standard_normal(shape) if generated else np.arange(n).reshape(shape) / n
        elif dtype.kind in "iu" and value.name in rows:
            data = rng.integers(0, rows[value.name], shape)
        elif dtype.kind in "iu" and "mask" in value.name.lower() and len(shape) == 2:
            seq = shape[1]
            valid = rng.integers(max(1, seq // 2), seq + 1, shape[0])
            data = np.arange(seq)[None, :] < valid[:, None]
        elif dtype.kind in "iub":
            data = np.ones(shape) if dtype.kind == "b" else np.zeros(shape)
        else:
            raise InputError(f"input '{value.name}': no sample data for dtype {dtype}")
        feeds[value.name] = np.ascontiguousarray(data, dtype=dtype)
    return feeds
