"""What a baseline-gated test does when this environment has no usable baseline."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE = "MEMGATE_REQUIRE_BASELINES"


def missing_baseline(reason: str) -> NoReturn:
    """Skip, or fail where ``MEMGATE_REQUIRE_BASELINES=1`` (the tox gate envs and CI's gate jobs).

    On a machine nobody recorded, there is nothing to gate against and the test skips. Where the
    gate is the point, a missing or mismatched baseline file means nothing is gated: it fails.
    """
    if os.environ.get(REQUIRE, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE} is set: record one with `memgate check --repeat 3` and "
                    "`memgate baseline update`)", pytrace=False)
    pytest.skip(reason)
