"""The model zoo's generators: valid, deterministic, faithful in shape and size, and run by the runtime
as onnxruntime runs them (small input sizes here; the defaults are for benchmarks)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import runtime as rt
from runtime import zoo
from runtime.zoo.builder import META_NAME

# case id -> (zoo name, options): small sizes that keep the architecture whole.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("mlp", {}),
    "resnet18": ("resnet18", {"size": 64}),
    "resnet50": ("resnet50", {"size": 64}),
    "mobilenetv2": ("mobilenetv2", {"size": 64}),
    "unet": ("unet", {"size": 64}),
    "u2netp": ("u2netp", {"size": 64}),
    "u2netp-opset13": ("u2netp", {"size": (48, 80), "opset": 13}),
    "u2net": ("u2net", {"size": 64}),
    "bert": ("bert", {"seq_len": 32}),
    "bert-decomposed": ("bert", {"seq_len": 32, "layer_norm": "decomposed", "batch": 2}),
    "bert-decomposed-opset18": ("bert", {"seq_len": 16, "layer_norm": "decomposed", "opset": 18, "layers": 2}),
}
# name -> (inputs, outputs) as (name, shape) at the options in CASES
SIGNATURES = {
    "mlp": ([("input", [1, 784])], [("output", [1, 10])]),
    "resnet18": ([("input", [1, 3, 64, 64])], [("output", [1, 1000])]),
    "resnet50": ([("input", [1, 3, 64, 64])], [("output", [1, 1000])]),
    "mobilenetv2": ([("input", [1, 3, 64, 64])], [("output", [1, 1000])]),
    "unet": ([("input", [1, 3, 64, 64])], [("output", [1, 2, 64, 64])]),
    "u2netp": ([("input", [1, 3, 64, 64])], [(f"d{i}", [1, 1, 64, 64]) for i in range(7)]),
    "u2netp-opset13": ([("input", [1, 3, 48, 80])], [(f"d{i}", [1, 1, 48, 80]) for i in range(7)]),
    "u2net": ([("input", [1, 3, 64, 64])], [(f"d{i}", [1, 1, 64, 64]) for i in range(7)]),
    "bert": ([("input_ids", [1, 32]), ("attention_mask", [1, 32])],
             [("last_hidden_state", [1, 32, 256]), ("pooler_output", [1, 256])]),
    "bert-decomposed": ([("input_ids", [2, 32]), ("attention_mask", [2, 32])],
                        [("last_hidden_state", [2, 32, 256]), ("pooler_output", [2, 256])]),
    "bert-decomposed-opset18": ([("input_ids", [1, 16]), ("attention_mask", [1, 16])],
                                [("last_hidden_state", [1, 16, 256]), ("pooler_output", [1, 256])]),
}
# Trainable parameters (BN running statistics and int64 buffers excluded), as PyTorch counts them.
PARAMETERS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenetv2": 3_504_872}


def _model(case: str) -> onnx.ModelProto:
    name, options = CASES[case]
    return zoo.get(name, **options)


def _signature(values: Any) -> list[tuple[str, list[int]]]:
    return [(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]


def parameter_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT and not t.name.endswith(("running_mean", "running_var")))


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # a literal oracle, and quick
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str, rtol: float = 1e-4) -> None:
    """1e-4 relative, plus an absolute 1e-5 of the output's scale for values near zero."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, what
    atol = 1e-5 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


# ------------------------------------------------------------------ the API
def test_names_list_generators_then_light_models() -> None:
    names = zoo.names()
    assert names[:8] == ["bert", "mlp", "mobilenetv2", "resnet18", "resnet50", "u2net", "u2netp", "unet"]
    assert {f"light:{n}" for n in ("resnet50", "vgg19", "densenet121", "inception_v1", "inception_v2",
                                   "shufflenet", "squeezenet", "bvlc_alexnet", "zfnet512")} <= set(names)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(rt.ModelLoadError, match="unknown model 'u3net'.*u2netp.*light:vgg19"):
        zoo.get("u3net")


def test_unknown_option_lists_the_options() -> None:
    with pytest.raises(rt.ConfigError, match="no option.*'sise'.*size"):
        zoo.get("u2netp", sise=64)
    with pytest.raises(rt.ConfigError, match="takes no options"):
        zoo.get("light:squeezenet", size=64)


@pytest.mark.parametrize("name,options,match", [
    ("unet", {"size": 50}, "divisible"), ("bert", {"seq_len": 600}, "seq_len"),
    ("bert", {"layer_norm": "rms"}, "layer_norm"), ("bert", {"opset": 16}, "opset"),
    ("u2netp", {"opset": 10}, "opset"), ("bert", {"hidden": 100, "heads": 3}, "multiple of heads"),
])
def test_bad_options_are_config_errors(name: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(rt.ConfigError, match=match):
        zoo.get(name, **options)


def test_resolve_names_and_paths(tmp_path: Any) -> None:
    assert isinstance(zoo.resolve("mlp"), onnx.ModelProto)
    path = zoo.save("mlp", tmp_path / "m.onnx")
    assert zoo.resolve(path) == path and zoo.resolve(str(path)) == path
    assert zoo.get(path).SerializeToString() == zoo.get("mlp").SerializeToString()
    assert set(zoo.sample_inputs(path)) == {"input"}
    with pytest.raises(rt.ModelLoadError, match="not a zoo name nor an existing file"):
        zoo.resolve(tmp_path / "missing.onnx")


def test_get_returns_a_fresh_proto_each_time() -> None:
    a = zoo.get("mlp")
    a.graph.ClearField("node")
    assert len(zoo.get("mlp").graph.node) == 5


def test_expected_outputs_only_for_light_models() -> None:
    with pytest.raises(rt.ConfigError, match="generated"):
        zoo.expected_outputs("u2net")
    with pytest.raises(rt.ModelLoadError, match="light:vgg19"):
        zoo.expected_outputs("light:vgg99")


# --------------------------------------------------------------- generators
@pytest.mark.parametrize("case", CASES)
def test_valid_onnx(case: str) -> None:
    model = _model(case)
    onnx.checker.check_model(model, full_check=True)
    assert any(p.key == META_NAME for p in model.metadata_props)


@pytest.mark.parametrize("case", ["mlp", "u2netp", "bert", "unet", "mobilenetv2", "u2net"])
def test_deterministic_bytes(case: str) -> None:
    name, options = CASES[case]
    cached = zoo.get(name, **options).SerializeToString()
    assert zoo.GENERATORS[name](**options).SerializeToString() == cached  # generated afresh, not reread


@pytest.mark.parametrize("case", ["mlp", "u2netp", "bert"])
def test_seed_changes_weights(case: str) -> None:
    name, options = CASES[case]
    assert zoo.get(name, **options, seed=1).SerializeToString() != zoo.get(name, **options).SerializeToString()


def test_clear_cache_keeps_results() -> None:
    first = zoo.get("mlp").SerializeToString()
    zoo.clear_cache()
    assert zoo.get("mlp").SerializeToString() == first


def test_weights_depend_on_seed_not_on_size() -> None:
    small, large = zoo.get("u2netp", size=32), zoo.get("u2netp", size=96)
    assert [t.SerializeToString() for t in small.graph.initializer] == \
        [t.SerializeToString() for t in large.graph.initializer]


@pytest.mark.parametrize("case", SIGNATURES)
def test_input_and_output_names_and_shapes(case: str) -> None:
    model = _model(case)
    inputs, outputs = SIGNATURES[case]
    assert _signature(model.graph.input) == inputs
    assert _signature(model.graph.output) == outputs


def test_default_sizes() -> None:
    for name, size in [("u2net", 320), ("u2netp", 320), ("resnet18", 224), ("resnet50", 224), ("mobilenetv2", 224)]:
        assert inspect.signature(zoo.GENERATORS[name]).parameters["size"].default == size
    assert _signature(zoo.get("u2netp").graph.input) == [("input", [1, 3, 320, 320])]
    assert _signature(zoo.get("mobilenetv2").graph.input) == [("input", [1, 3, 224, 224])]


def test_u2net_parameters_match_the_paper() -> None:
    """Qin et al. 2020: U^2-Net 44.0M parameters (176.3 MB), U^2-Net-lite 1.1M (4.7 MB)."""
    full, lite = parameter_count(_model("u2net")), parameter_count(_model("u2netp"))
    assert abs(full - 44.0e6) / 44.0e6 < 0.02
    assert abs(lite - 1.13e6) / 1.13e6 < 0.03
    assert abs(full * 4 / 1e6 - 176.3) < 3 and abs(lite * 4 / 1e6 - 4.7) < 0.2  # float32 bytes, in MB


@pytest.mark.parametrize("name", PARAMETERS)
def test_torchvision_parameter_counts(name: str) -> None:
    assert parameter_count(zoo.get(name, size=32)) == PARAMETERS[name]


def test_u2net_is_exported_as_pytorch_writes_it() -> None:
    model = _model("u2netp")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == ops.count("BatchNormalization") + 7  # 6 side convs and the fusing 1x1
    assert ops.count("BatchNormalization") == ops.count("Relu")
    assert ops.count("Sigmoid") == 7
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert pools and all(onnx.helper.get_attribute_value(a) == 1 for n in pools for a in n.attribute
                         if a.name == "ceil_mode")
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in resizes[0].attribute}
    assert attrs["mode"] == b"linear" and attrs["coordinate_transformation_mode"] == b"pytorch_half_pixel"
    dilations = {d for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "dilations"
                 for d in a.ints}
    assert dilations == {1, 2, 4, 8}


def test_bert_base_config_by_arguments() -> None:
    names = {"hidden": 768, "heads": 12, "layers": 1, "seq_len": 8}
    model = zoo.get("bert", **names)
    per_layer = 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 2 * 2 * 768
    embeddings = (30522 + 512 + 2) * 768 + 2 * 768
    pooler = 768 * 768 + 768
    assert parameter_count(model) == embeddings + per_layer + pooler  # bert-base: 12 layers -> 109,482,240
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Erf", "Softmax", "Shape", "Gather", "Unsqueeze", "Concat", "Cast"} <= ops


# ----------------------------------------------------------------- feeds
def test_sample_inputs_are_deterministic_and_typed() -> None:
    model = _model("bert-decomposed")
    a, b = zoo.sample_inputs(model), zoo.sample_inputs(model)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert {k: (v.dtype, v.shape) for k, v in a.items()} == {
        "input_ids": (np.int64, (2, 32)), "attention_mask": (np.int64, (2, 32))}
    assert 0 <= a["input_ids"].min() and a["input_ids"].max() < 30522
    mask = a["attention_mask"]
    assert set(np.unique(mask)) <= {0, 1} and (mask[:, 0] == 1).all()
    assert not np.array_equal(zoo.sample_inputs(model, seed=1)["input_ids"], a["input_ids"])
    image = zoo.sample_inputs("u2netp")["input"]
    assert image.dtype == np.float32 and image.shape == (1, 3, 320, 320) and 0.9 < image.std() < 1.1


# ------------------------------------------------------------------- saving
@pytest.mark.parametrize("external", [False, True])
def test_save_round_trips_and_runs(tmp_path: Any, external: bool) -> None:
    path = zoo.save("unet", tmp_path / "unet.onnx", external_data=external, size=32)
    again = zoo.save("unet", tmp_path / "again" / "unet.onnx", external_data=external, size=32)
    assert path.read_bytes() == again.read_bytes()
    data = tmp_path / "unet.onnx.data"
    assert data.exists() == external
    stored = onnx.load(str(path), load_external_data=False)
    externals = [t for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert bool(externals) == external
    for t in externals:
        meta = {e.key: e.value for e in t.external_data}
        assert int(meta["offset"]) % 64 == 0 and meta["location"] == "unet.onnx.data"
    loaded, made = onnx.load(str(path)).graph, zoo.get("unet", size=32).graph
    assert loaded.node == made.node
    assert all(np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
               for a, b in zip(loaded.initializer, made.initializer, strict=True))
    feeds = zoo.sample_inputs(path)
    assert feeds["input"].tobytes() == zoo.sample_inputs(zoo.get("unet", size=32))["input"].tobytes()
    out = rt.Core().compile_model(path).infer(feeds)
    assert_close(out["output"], run_ort(zoo.get("unet", size=32), feeds)["output"], "unet from file")


# -------------------------------------------- the runtime against onnxruntime
@pytest.mark.parametrize("case", CASES)
def test_runtime_matches_onnxruntime(case: str) -> None:
    model = _model(case)
    feeds = zoo.sample_inputs(model)
    expected = run_ort(model, feeds)
    actual = rt.Core().compile_model(model).infer(feeds)
    assert set(actual) == set(expected)
    for name, ref in expected.items():
        assert np.isfinite(ref).all() and ref.std() > 0, f"{case}/{name}: a degenerate output tests nothing"
        assert_close(actual[name], ref, f"{case}/{name}")


@pytest.mark.parametrize("mode", rt.MEMORY_MODES)
@pytest.mark.parametrize("case", ["unet", "bert-decomposed"])
def test_runtime_matches_onnxruntime_in_every_memory_mode(case: str, mode: str) -> None:
    model = _model(case)
    feeds = zoo.sample_inputs(model)
    expected = run_ort(model, feeds)
    compiled = rt.Core().compile_model(model, memory_mode=mode)
    for _ in range(2):  # a second run reuses (and must re-zero) planned buffers
        actual = compiled.infer(feeds)
        for name, ref in expected.items():
            assert_close(actual[name], ref, f"{case}/{name} in {mode}")
