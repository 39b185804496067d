"""Fixtures for the harness tests: a tiny model file and the allocators this machine has."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from stress_tests import allocators

#: The distribution name of the throwaway third-party runtimes the adapter tests install.
EXAMPLE = "memgate_example_runtime"


def tiny_model() -> onnx.ModelProto:
    """Conv -> Relu -> Sigmoid -> Add on 1x3x32x32: milliseconds per inference, every op implemented."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(np.zeros(8, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Sigmoid", ["r"], ["s"]),
             helper.make_node("Add", ["r", "s"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    onnx.save(tiny_model(), str(path))
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shared work folder: each model is materialized once for all cells."""
    return tmp_path_factory.mktemp("cells")


def installed_allocators() -> list[str]:
    return [f.name for f in allocators.discover() if f.installed]


def install_distribution(root: Path, entry_points: dict[str, str], module_source: str | None = None,
                         module: str = EXAMPLE) -> None:
    """A minimal installed distribution: what ``pip install`` of a package with these entry points leaves."""
    if module_source is not None:
        (root / f"{module}.py").write_text(module_source, encoding="utf-8")
    info = root / f"{EXAMPLE}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {EXAMPLE}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[memgate.runtimes]\n{lines}", encoding="utf-8")


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path here and on PYTHONPATH for children, as a site-packages would be."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    return tmp_path
