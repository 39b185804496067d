"""Bad input gets a typed error that says what and where; odd-but-valid models load."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt


def _vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def small_model(opset: int = 13) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                           helper.make_node("Relu", ["c"], ["y"], name="relu")],
                          "small", [_vi("x", [1, 3, 4, 4])], [_vi("y", None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


X = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)


def test_reads_path_bytes_and_proto(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(small_model(), path)
    core = rt.Core()
    results = [core.compile_model(src).infer({"x": X})["y"]
               for src in (str(path), path, path.read_bytes(), small_model(), core.read_model(path))]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    np.testing.assert_allclose(results[0][0, 0], X[0].sum(axis=0))


@pytest.mark.parametrize("content", [b"", b"garbage that is not a protobuf \x00\xff\x12", b"\x08\x07"])
def test_garbage_file_is_a_model_load_error(tmp_path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(rt.ModelLoadError, match="bad.onnx"):
        rt.Core().read_model(path)


def test_truncated_file_is_a_model_load_error(tmp_path) -> None:
    data = small_model().SerializeToString()
    path = tmp_path / "trunc.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(rt.ModelLoadError):
        rt.Core().compile_model(path)


def test_missing_file_and_directory(tmp_path) -> None:
    with pytest.raises(rt.ModelLoadError, match="no such model file"):
        rt.Core().read_model(tmp_path / "absent.onnx")
    with pytest.raises(rt.ModelLoadError, match="directory"):
        rt.Core().read_model(tmp_path)
    with pytest.raises(rt.ModelLoadError, match="int"):
        rt.Core().read_model(42)  # type: ignore[arg-type]


def test_missing_initializer_names_the_node() -> None:
    m = small_model()
    del m.graph.initializer[:]
    with pytest.raises(rt.GraphError, match="node 'conv'.*'w'"):
        rt.Core().compile_model(m)


def test_cycle_is_a_graph_error() -> None:
    g = helper.make_graph([helper.make_node("Relu", ["b"], ["a"], name="n1"),
                           helper.make_node("Relu", ["a"], ["b"], name="n2"),
                           helper.make_node("Add", ["a", "x"], ["y"], name="n3")],
                          "cyc", [_vi("x", [2])], [_vi("y", None)])
    with pytest.raises(rt.GraphError, match="cycle"):
        rt.Core().compile_model(helper.make_model(g))


def test_unknown_domain_and_unknown_op() -> None:
    g = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], name="f", domain="com.example")],
                          "dom", [_vi("x", [2])], [_vi("y", None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    with pytest.raises(rt.UnsupportedOperatorError) as e:
        rt.Core().compile_model(m)
    assert e.value.domain == "com.example" and e.value.node == "f" and e.value.op_type == "Frobnicate"
    g2 = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], name="f")], "op", [_vi("x", [2])],
                           [_vi("y", None)])
    with pytest.raises(rt.UnsupportedOperatorError, match="Frobnicate.*opset 13.*'f'"):
        rt.Core().compile_model(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13)]))


def test_duplicate_output_is_a_graph_error() -> None:
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="a"),
                           helper.make_node("Relu", ["x"], ["y"], name="b")],
                          "dup", [_vi("x", [2])], [_vi("y", None)])
    with pytest.raises(rt.GraphError, match="defined twice"):
        rt.Core().compile_model(helper.make_model(g))


def test_wrong_feeds_are_input_errors() -> None:
    compiled = rt.Core().compile_model(small_model())
    with pytest.raises(rt.InputError, match="missing input 'x'"):
        compiled.infer({})
    with pytest.raises(rt.InputError, match="unknown input.*'z'"):
        compiled.infer({"x": X, "z": X})
    with pytest.raises(rt.InputError, match="'x'.*float64.*float32\\[1,3,4,4\\]"):
        compiled.infer({"x": X.astype(np.float64)})
    with pytest.raises(rt.InputError, match="'x'.*\\[1, 3, 4, 5\\].*float32\\[1,3,4,4\\]"):
        compiled.infer({"x": np.zeros((1, 3, 4, 5), np.float32)})
    with pytest.raises(rt.InputError):
        compiled.infer({"x": "not an array"})
    # A nested list of the right shape is accepted and converted.
    out = compiled.infer({"x": X.tolist()})
    assert out["y"].shape == (1, 2, 4, 4)


def test_shape_mismatch_in_graph_is_a_shape_error_naming_the_node() -> None:
    w = numpy_helper.from_array(np.ones((2, 5, 1, 1), np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="badconv")], "s",
                          [_vi("x", [1, 3, 4, 4])], [_vi("y", None)], [w])
    with pytest.raises(rt.ShapeError, match="badconv"):
        rt.Core().compile_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def _external_model(tmp_path, location: str, nbytes: int | None = None):
    w = np.ones((2, 3, 1, 1), np.float32)
    t = numpy_helper.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(nbytes if nbytes is not None else w.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = small_model()
    m.graph.ClearField("initializer")
    m.graph.initializer.append(t)
    path = tmp_path / "ext.onnx"
    path.write_bytes(m.SerializeToString())
    return path, w


@pytest.mark.parametrize("mmap", [True, False])
def test_external_data_resolves_relative_to_the_model(tmp_path, mmap: bool) -> None:
    path, w = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    compiled = rt.Core(enable_mmap=mmap).compile_model(str(path))
    np.testing.assert_allclose(compiled.infer({"x": X})["y"][0, 0], X[0].sum(axis=0))


@pytest.mark.parametrize("location", ["../escape.bin", "/etc/passwd", "sub/../../escape.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location: str) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "escape.bin").write_bytes(np.ones(6, np.float32).tobytes())
    path, _ = _external_model(inner, location)
    with pytest.raises(rt.ModelLoadError, match="escapes|relative"):
        rt.Core().compile_model(str(path))


def test_external_data_truncated_or_missing(tmp_path) -> None:
    path, w = _external_model(tmp_path, "weights.bin")
    with pytest.raises(rt.ModelLoadError, match="weights.bin"):
        rt.Core().compile_model(str(path))
    (tmp_path / "weights.bin").write_bytes(w.tobytes()[:10])
    with pytest.raises(rt.ModelLoadError, match="truncated"):
        rt.Core().compile_model(str(path))


def test_external_data_from_bytes_needs_a_path(tmp_path) -> None:
    path, w = _external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").write_bytes(w.tobytes())
    with pytest.raises(rt.ModelLoadError, match="read_model\\(path\\)"):
        rt.Core().compile_model(path.read_bytes())


def test_symlinked_external_data_outside_is_refused(tmp_path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.ones(6, np.float32).tobytes())
    os.symlink(tmp_path / "secret.bin", inner / "link.bin")
    path, _ = _external_model(inner, "link.bin")
    with pytest.raises(rt.ModelLoadError, match="escapes"):
        rt.Core().compile_model(str(path))


def test_input_with_initializer_overridable_when_asked() -> None:
    bias = numpy_helper.from_array(np.full((2,), 10, np.float32), "bias")
    g = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "ovr",
                          [_vi("x", [2]), _vi("bias", [2])], [_vi("y", None)], [bias])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = np.array([1, 2], np.float32)
    as_const = rt.Core().compile_model(m)
    assert [p.name for p in as_const.inputs] == ["x"]
    np.testing.assert_array_equal(as_const.infer({"x": x})["y"], [11, 12])
    overridable = rt.Core().compile_model(m, ignore_input_with_initializer=False)
    assert [p.name for p in overridable.inputs] == ["x", "bias"]
    np.testing.assert_array_equal(overridable.infer({"x": x})["y"], [11, 12])
    np.testing.assert_array_equal(overridable.infer({"x": x, "bias": np.ones(2, np.float32)})["y"], [2, 3])


def test_legacy_opset_broadcast_and_consumed_inputs() -> None:
    a = numpy_helper.from_array(np.arange(3, dtype=np.float32), "b")
    g = helper.make_graph([helper.make_node("Add", ["x", "b"], ["s"], broadcast=1, axis=1),
                           helper.make_node("Relu", ["s"], ["y"], consumed_inputs=[0])],
                          "legacy", [_vi("x", [2, 3, 4])], [_vi("y", None)], [a])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 1)])
    m.ir_version = 3
    x = np.ones((2, 3, 4), np.float32)
    y = rt.Core().compile_model(m).infer({"x": x})["y"]
    np.testing.assert_array_equal(y, x + np.arange(3, dtype=np.float32).reshape(1, 3, 1))


def test_unknown_attribute_is_reported() -> None:
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r", bogus=1)], "attr",
                          [_vi("x", [2])], [_vi("y", None)])
    with pytest.raises(rt.UnsupportedOperatorError, match="bogus"):
        rt.Core().compile_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_non_tensor_input_type_is_refused() -> None:
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "seq", [_vi("x", [2]), seq], [_vi("y", None)])
    with pytest.raises(rt.ModelLoadError, match="non-tensor"):
        rt.Core().compile_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))


def test_kernel_failure_at_run_time_names_the_node(monkeypatch) -> None:
    compiled = rt.Core().compile_model(small_model())
    req = compiled.create_infer_request()
    req.infer({"x": X})
    run, ins, outs, scr = req._bound.steps[0]

    def broken(*args):
        raise FloatingPointError("boom")

    req._bound.steps[0] = (broken, ins, outs, scr)
    with pytest.raises(rt.KernelError, match="node 'conv'.*boom"):
        req.infer({"x": X})


def test_a_read_model_compiles_again_after_reduce_constant(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(small_model(), path)
    core = rt.Core()
    model = core.read_model(path)
    first = core.compile_model(model)
    assert model.proto is None  # reduce_constant released the protobuf...
    second = core.compile_model(model)  # ...and a second compile reads the file again
    np.testing.assert_array_equal(first.infer({"x": X})["y"], second.infer({"x": X})["y"])
    kept = rt.Core().read_model(path)
    rt.Core().compile_model(kept, reduce_constant=False)
    assert kept.proto is not None
    from_bytes = core.read_model(path.read_bytes())
    core.compile_model(from_bytes)
    with pytest.raises(rt.ModelLoadError, match="no file to read again"):
        core.compile_model(from_bytes)


def test_kernel_failure_in_reduce_mode_names_the_node() -> None:
    compiled = rt.Core().compile_model(small_model(), memory_mode="reduce")
    req = compiled.create_infer_request()
    req.infer({"x": X})
    rec = req._bound.recipe
    step, run, *rest = rec.steps[0]

    def broken(*args):
        raise FloatingPointError("boom")

    rec.steps[0] = (step, broken, *rest)
    with pytest.raises(rt.KernelError, match="node 'conv'.*boom"):
        req.infer({"x": X})
