"""A baseline-gated test skips on an unrecorded machine, and fails where the gate is required."""

from __future__ import annotations

import pytest

from stress_tests.plugin.gating import REQUIRE, missing_baseline


def test_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no baselines/x.json"):
        missing_baseline("no baselines/x.json for this environment")
    monkeypatch.setenv(REQUIRE, "0")
    with pytest.raises(pytest.skip.Exception):
        missing_baseline("no baselines/x.json for this environment")


def test_fails_where_baselines_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE, "1")
    with pytest.raises(pytest.fail.Exception, match=r"no baselines/x.json .*memgate baseline update"):
        missing_baseline("no baselines/x.json for this environment")
