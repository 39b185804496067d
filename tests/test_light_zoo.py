"""onnx's light model zoo through the runtime: stored outputs at onnx's own tolerances, and the
pre-softmax logits against onnxruntime.

The light models' weights are ConstantOfShape fills, so every class scores the same and most stored
outputs are a uniform 0.001 after Softmax: a weak check alone. The logits before the last Softmax
(one value repeated, but the product of the whole network) make the onnxruntime comparison the strong one.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import runtime as rt
from runtime import zoo
from runtime.zoo import light

NAMES = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
         "vgg19", "zfnet512"]
PARAMS = [pytest.param(f"light:{n}", id=n) for n in NAMES]  # vgg19 folds ~550 MB: seconds, still quick tier


def test_all_nine_are_listed() -> None:
    assert [n for n in zoo.names() if n.startswith("light:")] == [f"light:{n}" for n in NAMES]


def test_tolerances_are_onnxs() -> None:
    assert light.tolerance("light:densenet121") == (2e-3, 1e-7)
    assert all(light.tolerance(f"light:{n}") == (1e-3, 1e-7) for n in NAMES if n != "densenet121")


def test_feed_is_onnxs_runner_arange() -> None:
    feeds = zoo.sample_inputs("light:squeezenet", seed=5)
    (name, x), = feeds.items()
    assert x.dtype == np.float32 and x.shape == (1, 3, 224, 224)
    n = x.size
    np.testing.assert_array_equal(x.reshape(-1), (np.arange(n) / n).astype(np.float32))


@pytest.mark.parametrize("name", PARAMS)
def test_matches_stored_outputs(name: str) -> None:
    model = zoo.get(name)
    expected = zoo.expected_outputs(name)
    rtol, atol = light.tolerance(name)
    out = rt.Core().compile_model(model).infer(zoo.sample_inputs(model))
    assert list(out) == list(expected)
    for key, ref in expected.items():
        assert out[key].shape == ref.shape and out[key].dtype == ref.dtype
        np.testing.assert_allclose(out[key], ref, rtol=rtol, atol=atol, err_msg=f"{name}/{key}")


@pytest.mark.parametrize("name", PARAMS)
def test_logits_match_onnxruntime(name: str) -> None:
    import onnxruntime as ort

    model = zoo.get(name)
    feeds = zoo.sample_inputs(model)
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    logits = softmax[-1].input[0] if softmax else model.graph.output[0].name
    probe = zoo.get(name)
    probe.graph.output.append(onnx.ValueInfoProto(name=logits))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    ref = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(
        [logits], feeds)[0]
    request = rt.Core().compile_model(model, keep=[logits]).create_infer_request()
    request.infer(feeds)
    got = request.get_tensor(logits)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())),
                               err_msg=f"{name}/{logits}")
