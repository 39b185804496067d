"""Test tiers: the quick tier runs by default; ``--full`` adds the nightly tier (marker ``full``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full", action="store_true", default=False,
                     help="also run the full tier (tests marked 'full': long leak hunts, the whole matrix)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full") or config.getoption("-m"):
        return
    quick = [i for i in items if i.get_closest_marker("full") is None]
    deselected = [i for i in items if i.get_closest_marker("full") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = quick
