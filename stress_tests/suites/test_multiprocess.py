"""Multi-process: N processes compiling one model from a shared cache map its weights once.

Each child compiles from the warm cache with ``enable_mmap`` (weights are views into the blob),
infers, and waits. From ``/proc/<pid>/smaps`` the blob's mapping: its RSS is counted in every
process, its PSS (proportional share) sums to about one copy. ``/proc/<pid>/smaps_rollup`` shows
the same from the other side: a child without mmap carries the weights in its anonymous memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import runtime as rt

pytestmark = pytest.mark.stress
CHILD = r"""
import sys
import numpy as np
import runtime as rt
from runtime import zoo
cache, model, mmap = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
compiled = rt.Core(cache_dir=cache, enable_mmap=mmap).compile_model(model)
compiled.infer(zoo.sample_inputs(model))
print(compiled.compile_info["cache"], compiled.compile_info.get("blob"), flush=True)
sys.stdin.read()
"""
KiB = 1024


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup fields in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            out[name] = int(rest.split()[0]) * KiB
    return out


def mapping(pid: int, path: str) -> dict[str, int]:
    """Rss and Pss (bytes) of every mapping of ``path`` in ``pid``, summed."""
    totals = {"Rss": 0, "Pss": 0}
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=5)
        if first and "-" in first[0] and not first[0].endswith(":"):  # a mapping's header line
            current = first[5] if len(first) == 6 else None
        elif current == path and first[0].rstrip(":") in totals:
            totals[first[0].rstrip(":")] += int(first[1]) * KiB
    return totals


def start(cache: Path, model: Path, mmap: bool) -> tuple[subprocess.Popen, list[str]]:
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(cache), str(model), "1" if mmap else "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, p.stdout.readline().split()


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs /proc/<pid>/smaps_rollup (Linux 4.14+)")
@pytest.mark.parametrize("model, n", [("resnet18", 3), pytest.param("resnet50", 6, marks=pytest.mark.full)])
def test_processes_share_one_copy_of_the_weights(zoo_model, tmp_path: Path, model: str, n: int) -> None:
    path, _ = zoo_model(model)
    cache = tmp_path / "cache"
    warm = rt.Core(cache_dir=cache).compile_model(str(path))
    weights = warm.memory_stats()["weights_bytes"]
    del warm
    children = [start(cache, path, mmap=True) for _ in range(n)]
    private = start(cache, path, mmap=False)
    try:
        assert all(info[0] == "hit" for _, info in children + [private]), [i for _, i in children]
        blob = children[0][1][1]
        blob_size = os.path.getsize(blob)
        shared = [mapping(p.pid, blob) for p, _ in children]
        rss, pss = sum(s["Rss"] for s in shared), sum(s["Pss"] for s in shared)
        # every process touched the weights: each has (nearly) all of them resident ...
        assert rss >= 0.9 * n * weights, (rss, n, weights)
        # ... yet together they cost one copy: the page cache is shared and PSS splits it
        assert pss <= 1.1 * blob_size + 64 * KiB * n, f"PSS of the blob over {n} processes: {pss} for {blob_size}"
        # the same from smaps_rollup: without mmap the weights are each process's anonymous memory
        anon_mapped = min(rollup(p.pid)["Pss_Anon"] for p, _ in children)
        anon_private = rollup(private[0].pid)["Pss_Anon"]
        assert anon_private - anon_mapped >= 0.8 * weights, (anon_private, anon_mapped, weights)
        assert mapping(private[0].pid, blob)["Rss"] == 0
    finally:
        for p, _ in children + [private]:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(timeout=60)
