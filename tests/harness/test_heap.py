"""Heap counters: each allocator's live bytes follow what the program keeps and frees (in a child each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stress_tests import allocators, heap
from stress_tests.heap import HeapCounterError, Unwrap, open_counter

from .conftest import installed_allocators

HEAP_PY = Path(heap.__file__)
# Standalone, as a target child loads it: by file path, nothing of the package imported.
CHILD = r"""
import ctypes, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("memgate_heap", sys.argv[1])
heap = importlib.util.module_from_spec(spec); spec.loader.exec_module(heap)
c = heap.open_counter(sys.argv[2], sys.argv[3] or None)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def settle():
    # a few readings: jemalloc's thread cache is refilled in batches
    return [c.live() for _ in range(3)][-1]
before = settle()
kept = [libc.malloc(64 * 1024) for _ in range(64)]  # 4 MiB in 64 KiB blocks
grown = settle()
for p in kept:
    libc.free(p)
freed = settle()
blocks0 = sys.getallocatedblocks()
small = [object() for _ in range(10000)]
blocks1 = sys.getallocatedblocks()
print(json.dumps({"fields": list(c.fields), "sample": c.sample(), "grown": grown - before, "freed": freed - before,
                  "blocks": blocks1 - blocks0, "source": c.source, "package": "stress_tests" in sys.modules}))
"""


def run_child(name: str, extra_env: dict[str, str] | None = None) -> dict:
    found = allocators.find(name)
    env, _ = allocators.child_environment(found, (), {"PATH": "/usr/bin:/bin", **(extra_env or {})})
    out = subprocess.run([sys.executable, "-c", CHILD, str(HEAP_PY), name, found.path or ""], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", installed_allocators())
def test_live_bytes_follow_what_is_kept_and_freed(name: str) -> None:
    got = run_child(name)
    assert not got["package"], "heap.py must load standalone"
    assert got["fields"][:2] == ["HeapLive", "PyBlocks"]
    assert all(v >= 0 for v in got["sample"].values())
    assert 4 << 20 <= got["grown"] <= (4 << 20) + (256 << 10), got  # 4 MiB kept, at size-class granularity
    assert abs(got["freed"]) <= 256 << 10, got  # and given back
    assert got["blocks"] >= 10000  # small objects: pymalloc blocks, outside malloc


@pytest.mark.parametrize("name", installed_allocators())
def test_pythonmalloc_malloc_routes_small_objects_to_the_allocator(name: str) -> None:
    got = run_child(name, {"PYTHONMALLOC": "malloc"})
    assert got["sample"]["PyBlocks"] == 0 and got["blocks"] == 0  # pymalloc is off: it counts nothing
    assert got["grown"] >= 4 << 20


def test_jemalloc_keeps_active_and_resident_beside_allocated() -> None:
    if "jemalloc" not in installed_allocators():
        pytest.fail("jemalloc is not installed (apt-get install libjemalloc2)")
    got = run_child("jemalloc")
    s = got["sample"]
    assert got["fields"] == ["HeapLive", "PyBlocks", "HeapActive", "HeapResident"]
    assert s["HeapLive"] <= s["HeapActive"] <= s["HeapResident"]


def test_unwrap_follows_a_32_bit_counter_across_4_gib() -> None:
    u = Unwrap()
    gib = 1 << 30
    assert u(3 * gib) == 3 * gib
    assert u((4 * gib + gib // 2) % (1 << 32)) == 4 * gib + gib // 2 and u.wrapped == 1  # crossed 4 GiB upward
    assert u((5 * gib) % (1 << 32)) == 5 * gib
    assert u(3 * gib + gib // 2) == 3 * gib + gib // 2 and u.wrapped == 2  # and back down
    assert u(-1) == (1 << 32) - 1  # a negative int field is its unsigned value


def test_unknown_allocator_and_unloaded_library_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(HeapCounterError, match="no heap counter"):
        open_counter("hoard")
    with pytest.raises(HeapCounterError, match="not loaded"):
        open_counter("jemalloc", str(tmp_path / "libjemalloc.so.2"))
    with pytest.raises(HeapCounterError, match="no library path"):
        open_counter("tcmalloc", None)


def test_glibc_counter_in_this_process() -> None:
    if allocators.find("glibc").installed and "LD_PRELOAD" not in __import__("os").environ:
        c = open_counter("glibc")
        assert c.source in ("mallinfo2", "mallinfo")
        assert c.live() > 0 and set(c.sample()) == {"HeapLive", "PyBlocks"}


class _OldLibc:
    """libc as glibc before 2.33 shows it: mallinfo, no mallinfo2 (the real function underneath)."""

    def __init__(self) -> None:
        import ctypes

        self.mallinfo = ctypes.CDLL("libc.so.6").mallinfo


def test_mallinfo_fallback_reads_the_same_heap_and_says_so() -> None:
    if "LD_PRELOAD" in __import__("os").environ:
        pytest.fail("this test reads glibc's heap in this process: run it without a preloaded allocator")
    from stress_tests.heap import glibc_counter

    old, new = glibc_counter(_OldLibc()), open_counter("glibc")  # type: ignore[arg-type]
    assert old.source == "mallinfo" and any("32-bit" in n for n in old.notes)
    assert abs(old.live() - new.live()) < 1 << 20  # the same heap, under 2 GiB: no wrap to undo


def test_doctor_names_the_heap_counter_it_proved() -> None:
    from stress_tests.doctor import verify_in_child

    ok, text = verify_in_child(allocators.find("glibc"))
    assert ok and "heap counter: mallinfo2" in text
