"""The onnx package's light model zoo: real architectures whose weights are ConstantOfShape nodes.

The files ship in ``onnx/backend/test/data/light/`` with expected outputs beside them
(``light_<name>_output_<i>.pb``) for the feed onnx's test runner generates:
``np.arange(n).reshape(shape) / n`` as float32 (``Runner.generate_dummy_data``, random=False).
Tolerances come from ``onnx/backend/test/data/real/test_<name>/data.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError

PREFIX = "light:"
_DEFAULT_TOLERANCE = (1e-3, 1e-7)  # onnx's backend test loader defaults (rtol, atol)


def data_dir() -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def names() -> list[str]:
    """``light:<name>`` for every model file shipped with the installed onnx (none if it ships no test data)."""
    folder = data_dir()
    if not folder.is_dir():
        return []
    return sorted(PREFIX + p.stem[len("light_"):] for p in folder.glob("light_*.onnx"))


def path(name: str) -> Path:
    """The model file of ``light:<name>``."""
    file = data_dir() / f"light_{_short(name)}.onnx"
    if not file.is_file():
        raise ModelLoadError(f"{name!r} is not in onnx's light zoo at {data_dir()}; known: {', '.join(names())}")
    return file


def load(name: str) -> onnx.ModelProto:
    return onnx.load(str(path(name)))


def expected_outputs(name: str) -> dict[str, np.ndarray]:
    """The stored outputs for the arange feed, keyed by graph output name."""
    model = onnx.load(str(path(name)), load_external_data=False)
    out = {}
    for i, value in enumerate(model.graph.output):
        file = data_dir() / f"light_{_short(name)}_output_{i}.pb"
        tensor = onnx.TensorProto()
        try:
            tensor.ParseFromString(file.read_bytes())
        except OSError as e:
            raise ModelLoadError(f"{name}: expected output file {file} cannot be read: {e}") from e
        out[value.name] = numpy_helper.to_array(tensor)
    return out


def tolerance(name: str) -> tuple[float, float]:
    """(rtol, atol) that onnx's own backend test uses for this model."""
    meta = data_dir().parent / "real" / f"test_{_short(name)}" / "data.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return _DEFAULT_TOLERANCE
    return float(data.get("rtol", _DEFAULT_TOLERANCE[0])), float(data.get("atol", _DEFAULT_TOLERANCE[1]))


def arange_feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """onnx's runner feed: ``arange(n).reshape(shape) / n`` as float32, symbolic dims taken as 1."""
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        feeds[value.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


def _short(name: str) -> str:
    return name[len(PREFIX):] if name.startswith(PREFIX) else name
