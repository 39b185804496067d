"""Verification: the allocator asked for is the one in effect, or the cell fails (never green on doubt)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from stress_tests import allocators
from stress_tests.runner import run_cell
from stress_tests.spec import CellSpec
from stress_tests.verify import mapped_libraries, verify_allocator

MAPS = """55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1 /usr/bin/python3.11
7f0000000000-7f0000001000 r--p 00000000 08:01 2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
7f0000001000-7f0000002000 r-xp 00001000 08:01 2 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
7f0000003000-7f0000004000 r--p 00000000 08:01 3 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000005000-7f0000006000 rw-p 00000000 00:00 0 [heap]
"""
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD and /proc are Linux")


def test_mapped_libraries_from_maps_text() -> None:
    assert mapped_libraries(MAPS) == ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6"]


def test_glibc_fails_when_another_allocator_is_mapped() -> None:
    v = verify_allocator("glibc", None, MAPS)
    assert not v.ok and "libjemalloc" in v.message


def test_preloaded_allocator_must_be_mapped() -> None:
    v = verify_allocator("tcmalloc", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", MAPS)
    assert not v.ok and "did not take effect" in v.message


@linux
def test_this_process_runs_on_what_it_says() -> None:
    preload = os.environ.get("LD_PRELOAD", "")
    if any(os.path.basename(p).startswith(allocators.PRELOADED_MARKERS) for p in preload.split()):
        pytest.skip("the test process itself runs under a preloaded allocator")
    v = verify_allocator("glibc", None)
    assert v.ok, v.message
    assert any("libc" in e for e in v.evidence) and v.version


@pytest.mark.stress
@linux
def test_a_preload_the_loader_ignores_fails_the_cell(tiny_model_path: Path, workdir: Path, tmp_path: Path) -> None:
    """A file that is not a shared object: ld.so prints one line and carries on without it."""
    bogus = tmp_path / "libjemalloc.so.2"
    bogus.write_text("not an ELF file\n")
    r = run_cell(CellSpec(pipeline="reinfer", model=str(tiny_model_path), allocator="jemalloc",
                          allocator_path=str(bogus), iterations=3, timeout=120), workdir=workdir)
    assert r.status == "failed", r
    assert "did not take effect" in r.reason
    assert r.applied is not None and not r.applied.verified
    assert any("cannot be preloaded" in n for n in r.applied.notes)  # the loader's own words, kept
    assert not r.series.get("VmRSS")  # nothing was measured under the wrong allocator


@pytest.mark.stress
@linux
def test_a_library_that_is_not_an_allocator_fails_the_cell(tiny_model_path: Path, workdir: Path) -> None:
    """Mapped, but malloc still comes from libc: the second piece of evidence catches it."""
    libm = allocators.ldconfig_cache().get("libm.so.6")
    if libm is None:
        pytest.skip("no libm.so.6 in the loader cache")
    r = run_cell(CellSpec(pipeline="reinfer", model=str(tiny_model_path), allocator="mimalloc",
                          allocator_path=libm, iterations=3, timeout=120), workdir=workdir)
    assert r.status == "failed", r
    assert "malloc resolves to" in r.reason


def test_a_missing_allocator_is_skipped_or_failed(monkeypatch: pytest.MonkeyPatch, tiny_model_path: Path) -> None:
    monkeypatch.setattr(allocators, "ldconfig_cache", lambda: {})
    monkeypatch.setattr(allocators, "_known_dirs", lambda: [])
    spec = CellSpec(model=str(tiny_model_path), allocator="tcmalloc", iterations=3)
    skipped = run_cell(spec)
    assert skipped.status == "skipped" and "apt-get install libtcmalloc-minimal4" in skipped.reason
    assert run_cell(spec, require_allocators=True).status == "failed"
