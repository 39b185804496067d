"""Test tiers (the quick tier by default; ``--full`` adds marker ``full``) and the suites' allocator settings."""

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


@pytest.fixture(scope="session")
def cell_settings() -> dict[str, object]:
    """allocator, tunables and trim flag from MEMGATE_ALLOCATOR / MEMGATE_TUNABLES (the tox factors).

    An allocator asked for and not installed fails the suites (with the install hint): a tox env
    named after jemalloc must not pass by skipping every cell. glibc, the default, is always there.
    """
    from stress_tests.allocators import find
    from stress_tests.profiles import ProfileError, from_environment

    try:
        allocator, tunables, trim = from_environment()
    except ProfileError as e:
        pytest.fail(str(e), pytrace=False)
    found = find(allocator)
    if not found.installed:
        pytest.fail(f"MEMGATE_ALLOCATOR={allocator}: {found.hint}", pytrace=False)
    return {"allocator": allocator, "tunables": tunables, "trim": trim}
