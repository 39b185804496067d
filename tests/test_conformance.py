"""ONNX's own node conformance cases, run for every op the runtime registers.

A case runs when every node in it is a registered op of the default domain. Known
failures are listed with their reason in ``tests/conformance/xfail_*.py``; a listed
case that passes fails the run too (strict), so the list stays true.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import runtime as rt
from runtime.ops import REGISTRY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from onnx.backend.test.case.node import collect_testcases

    CASES = collect_testcases(None)


def _xfails() -> dict[str, str]:
    from tests import conformance

    merged: dict[str, str] = {}
    for mod in pkgutil.iter_modules(conformance.__path__):
        if mod.name.startswith("xfail_"):
            merged.update(importlib.import_module(f"tests.conformance.{mod.name}").XFAIL)
    return merged


XFAIL = _xfails()


def _covered(case) -> bool:
    return all(n.domain in ("", "ai.onnx") and n.op_type in REGISTRY for n in case.model.graph.node)


SELECTED = sorted((c for c in CASES if _covered(c)), key=lambda c: c.name)
_RESULTS: dict[str, bool] = {}


def _run_case(case) -> None:
    core = rt.Core(compile_threads=1)
    compiled = core.compile_model(case.model)
    names = [i.name for i in case.model.graph.input]
    for inputs, outputs in case.data_sets:
        feeds = {}
        for name, value in zip(names, inputs):
            if isinstance(value, onnx.TensorProto):
                value = numpy_helper.to_array(value)
            elif isinstance(value, np.generic):
                value = np.asarray(value)
            if not isinstance(value, np.ndarray):
                raise rt.InputError(f"non-tensor input '{name}' ({type(value).__name__})")
            feeds[name] = value
        got = compiled.infer(feeds)
        for out_vi, expected in zip(case.model.graph.output, outputs):
            actual = got[out_vi.name]
            if isinstance(expected, onnx.TensorProto):
                expected = numpy_helper.to_array(expected)
            expected = np.asarray(expected)
            assert actual.shape == expected.shape, f"{out_vi.name}: shape {actual.shape} != {expected.shape}"
            if expected.dtype.kind in "fc":
                np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol, equal_nan=True)
            else:
                np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("case", SELECTED, ids=[c.name for c in SELECTED])
def test_node_case(case) -> None:
    reason = XFAIL.get(case.name)
    try:
        _run_case(case)
    except (AssertionError, rt.Error) as e:
        _RESULTS[case.name] = False
        if reason is not None:
            pytest.xfail(reason)
        raise AssertionError(f"{case.name}: {e}") from e
    _RESULTS[case.name] = True
    if reason is not None:
        pytest.fail(f"{case.name} is listed as an expected failure ({reason}) but passes: remove it from the list")


def test_pass_rate_printed(capsys) -> None:
    """Prints the pass rate of the cases run above; every failure among them must be listed."""
    ran = len(_RESULTS)
    passed = sum(_RESULTS.values())
    with capsys.disabled():
        print(f"\nONNX node conformance: {passed}/{ran} cases pass "
              f"({len(SELECTED)} cover registered ops of {len(CASES)} total; {len(XFAIL)} expected failures)")
    unexpected = sorted(n for n, ok in _RESULTS.items() if not ok and n not in XFAIL)
    assert not unexpected, f"unlisted failures: {unexpected}"
