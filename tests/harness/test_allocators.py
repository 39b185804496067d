"""Allocator discovery, tunable routing and the child's environment (no child started here)."""

from __future__ import annotations

import pytest

from stress_tests import allocators
from stress_tests.allocators import AllocatorError, Found, child_environment, parse_ldconfig, route_tunables

from .conftest import installed_allocators

LDCONFIG = """1234 libs found in cache `/etc/ld.so.cache'
\tlibjemalloc.so.2 (libc6,x86-64) => /lib/x86_64-linux-gnu/libjemalloc.so.2
\tlibjemalloc.so.2 (libc6) => /lib/i386-linux-gnu/libjemalloc.so.2
\tlibtcmalloc_minimal.so.4 (libc6,x86-64) => /lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
"""
LIST_TUNABLES = """glibc.malloc.arena_max: 0x0 (min: 0x1, max: 0xffffffffffffffff)
glibc.malloc.trim_threshold: 0x0 (min: 0x0, max: 0xffffffffffffffff)
glibc.malloc.check: 0 (min: 0, max: 3)
glibc.rtld.nns: 0x4 (min: 0x1, max: 0x10)
"""


@pytest.fixture
def known_tunables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route against a fixed list, whatever this machine's glibc knows."""
    monkeypatch.setattr(allocators, "glibc_tunables", lambda: allocators.parse_list_tunables(LIST_TUNABLES))


def test_parse_ldconfig_keeps_this_word_size() -> None:
    assert parse_ldconfig(LDCONFIG, want64=True) == {
        "libjemalloc.so.2": "/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "libtcmalloc_minimal.so.4": "/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    }
    assert parse_ldconfig(LDCONFIG, want64=False) == {"libjemalloc.so.2": "/lib/i386-linux-gnu/libjemalloc.so.2"}


def test_parse_list_tunables_reads_ranges() -> None:
    got = allocators.parse_list_tunables(LIST_TUNABLES)
    assert got["glibc.malloc.arena_max"] == (1, 2**64 - 1)
    assert got["glibc.malloc.check"] == (0, 3)


@pytest.mark.parametrize("name", installed_allocators())
def test_installed_allocators_are_found(name: str) -> None:
    found = allocators.find(name)
    assert found.installed
    assert (found.path is None) == (name == "glibc")


def test_a_missing_allocator_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocators, "ldconfig_cache", lambda: {})
    monkeypatch.setattr(allocators, "_known_dirs", lambda: [])
    found = allocators.find("jemalloc")
    assert not found.installed and found.path is None
    assert "not installed; install it with `apt-get install libjemalloc2`" in found.hint


def test_allocator_path_overrides_discovery(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lib = tmp_path / "libmine.so"
    lib.write_bytes(b"")
    assert allocators.find("jemalloc", str(lib)) == Found("jemalloc", str(lib), True, "--allocator-path")
    missing = allocators.find("jemalloc", str(tmp_path / "nope.so"))
    assert not missing.installed and "does not exist" in missing.hint


def test_unknown_allocator() -> None:
    with pytest.raises(AllocatorError, match="choose one of"):
        allocators.find("hoard")


@pytest.mark.usefixtures("known_tunables")
def test_glibc_tunables_route_and_sizes_are_parsed() -> None:
    r = route_tunables("glibc", [("arena_max", "1"), ("trim_threshold", "64KiB"), ("glibc.rtld.nns", "2"),
                                 ("top_pad", "default")])
    assert r.glibc == {"glibc.malloc.arena_max": "1", "glibc.malloc.trim_threshold": "65536", "glibc.rtld.nns": "2"}
    assert r.applied["glibc:glibc.malloc.arena_max"] == "1"


@pytest.mark.usefixtures("known_tunables")
def test_glibc_would_ignore_these_so_we_refuse() -> None:
    with pytest.raises(AllocatorError, match="range"):
        route_tunables("glibc", [("arena_max", "0")])
    with pytest.raises(AllocatorError, match="no tunable"):
        route_tunables("glibc", [("glibc.malloc.arena_maxx", "1")])
    with pytest.raises(AllocatorError, match="unknown tunable 'dirty_decay_ms' for glibc"):
        route_tunables("glibc", [("dirty_decay_ms", "0")])


@pytest.mark.usefixtures("known_tunables")
def test_allocator_options_route_to_their_variables() -> None:
    je = route_tunables("jemalloc", [("dirty_decay_ms", "0"), ("background_thread", "true")])
    assert je.malloc_conf == {"dirty_decay_ms": "0", "background_thread": "true"}
    tc = route_tunables("tcmalloc", [("release_rate", "10")])
    assert tc.env == {"TCMALLOC_RELEASE_RATE": "10"}
    mi = route_tunables("mimalloc", [("purge_delay", "0"), ("env.OMP_NUM_THREADS", "2")])
    assert mi.env == {"MIMALLOC_PURGE_DELAY": "0", "OMP_NUM_THREADS": "2"}
    cross = route_tunables("glibc", [("jemalloc.narenas", "1")])
    assert cross.malloc_conf == {"narenas": "1"} and any("not to glibc" in n for n in cross.notes)


@pytest.mark.usefixtures("known_tunables")
def test_child_environment_preloads_exactly_one_allocator() -> None:
    base = {"LD_PRELOAD": "/opt/libasan.so /usr/lib/libtcmalloc.so.4", "GLIBC_TUNABLES": "glibc.malloc.check=1",
            "MALLOC_CONF": "narenas:2", "OMP_NUM_THREADS": "4", "PATH": "/bin"}
    jem = Found("jemalloc", "/x/libjemalloc.so.2", True, "ldconfig")
    env, _ = child_environment(jem, [("dirty_decay_ms", "0"), ("arena_max", "2")], base)
    assert env["LD_PRELOAD"] == "/x/libjemalloc.so.2 /opt/libasan.so"  # the other allocator is gone
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.check=1:glibc.malloc.arena_max=2"
    assert env["MALLOC_CONF"] == "narenas:2,dirty_decay_ms:0"  # jemalloc: the later pair wins
    assert env["OMP_NUM_THREADS"] == "4" and env["OPENBLAS_NUM_THREADS"] == "1"  # caller's choice kept
    assert env["PATH"] == "/bin"
    glibc_env, _ = child_environment(Found("glibc", None, True, "builtin"), [], base)
    assert glibc_env["LD_PRELOAD"] == "/opt/libasan.so"
    assert "LD_PRELOAD" not in child_environment(Found("glibc", None, True, "builtin"), [], {})[0]


def test_recorded_env_keeps_the_allocation_relevant_part() -> None:
    env = {"LD_PRELOAD": "a", "MIMALLOC_PURGE_DELAY": "0", "HOME": "/root", "MALLOC_ARENA_MAX": "2"}
    assert allocators.recorded_env(env) == {"LD_PRELOAD": "a", "MALLOC_ARENA_MAX": "2", "MIMALLOC_PURGE_DELAY": "0"}
