"""``baseline update`` killed mid-write leaves the old file or the new one, never half of either.

The child is stopped at exact points of the write (half the bytes written; all written but not
yet renamed) by hooks that announce the point and wait, then SIGKILLed: no timing luck needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stress_tests.baselines import dumps, load_dir, read_baseline, update, write_baseline

from .helpers import cell, results

KEY = "linux-x86_64-py3.11-numpy2-glibc-default"
WRITER = """
import json, os, sys, time
import stress_tests.baselines as b
path, data, where = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]

def stop(point):
    print(point, flush=True)
    time.sleep(600)

real_fdopen = os.fdopen
class HalfWriter:
    def __init__(self, f): self.f = f
    def __enter__(self): return self
    def __exit__(self, *a): return self.f.__exit__(*a)
    def write(self, text):
        self.f.write(text[: len(text) // 2]); self.f.flush(); stop("half")
    def __getattr__(self, name): return getattr(self.f, name)

if where == "half":
    os.fdopen = lambda *a, **k: HalfWriter(real_fdopen(*a, **k))
elif where == "fsync":
    os.fsync = lambda fd: stop("fsync")
elif where == "rename":
    real_replace = os.replace
    os.replace = lambda a, b_: (real_replace(a, b_), stop("rename"))
b.write_baseline(path, data)
print("done", flush=True)
"""


def version(value: int, n_entries: int = 50) -> dict:
    metric = {"value": value, "spread": 0, "tolerance": 2097152, "unit": "bytes"}
    entries = {f"reinfer/model{i:03d}/default/builtin": {
        "pipeline": "reinfer", "model": f"model{i:03d}", "mode": "default", "runtime": "builtin", "iterations": 60,
        "runs": 3, "metrics": {f"hwm_delta:stage{j}": metric for j in range(4)}} for i in range(n_entries)}
    return {"schema": "memgate-baseline", "version": 1, "env_key": KEY, "entries": entries,
            "environment": {"allocator": "glibc", "profile": "default", "tunables": [], "trim": False}}


@pytest.mark.parametrize("point, survivor", [("half", "old"), ("fsync", "old"), ("rename", "new")])
def test_killed_writer_leaves_old_or_new_never_half(tmp_path: Path, point: str, survivor: str) -> None:
    old, new = version(1), version(2, n_entries=51)
    path = tmp_path / "baselines" / f"{KEY}.json"
    write_baseline(path, old)
    (tmp_path / "new.json").write_text(json.dumps(new))
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tmp_path / "new.json"), point],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == point
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert path.read_text() == dumps(old if survivor == "old" else new)
    assert read_baseline(path)["env_key"] == KEY
    # what an interrupted write leaves is a hidden temporary file that readers skip and updates ignore
    assert [p.name for p in path.parent.iterdir() if not p.name.startswith(".")] == [path.name]
    assert list(load_dir(path.parent)) == [KEY]
    update([results(cell())], path.parent)
    assert "reinfer/mlp/default/builtin" in read_baseline(path)["entries"]
