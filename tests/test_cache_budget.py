"""The cache's size budget: least recently used blobs go, the current one stays, races are misses."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import runtime as rt
import runtime.cache as cache_mod
from runtime.cache.budget import STALE_TMP_SECONDS, prune
from runtime.cache.digests import FileDigests, Signature

from .test_cache import X, _blobs, _save, conv_model


def _age(path: Path, seconds: float) -> None:
    """Set a file's last use ``seconds`` ago (file clocks are too coarse to order back-to-back compiles)."""
    t = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(t, t))


def _paths(tmp_path: Path, n: int) -> list[Path]:
    return [_save(tmp_path, conv_model(seed=i), f"m{i}.onnx") for i in range(n)]


def test_budget_keeps_the_most_recently_used_blobs(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b, c = _paths(tmp_path, 3)
    rt.Core(cache_dir=cache).compile_model(a)
    size = _blobs(cache)[0].stat().st_size
    core = rt.Core(cache_dir=cache, cache_max_bytes=2 * size + size // 2)  # room for two blobs
    blob_a = _blobs(cache)[0]
    core.compile_model(b)
    blob_b = next(p for p in _blobs(cache) if p != blob_a)
    _age(blob_a, 100)
    _age(blob_b, 50)
    assert core.compile_model(a).compile_info["cache"] == "hit"  # a is now the most recently used
    core.compile_model(c)  # three blobs do not fit: b, the least recently used, goes
    assert blob_a in _blobs(cache) and blob_b not in _blobs(cache) and len(_blobs(cache)) == 2
    again = core.compile_model(b)
    assert again.compile_info["cache"] == "miss"
    np.testing.assert_array_equal(again.infer({"x": X})["y"], rt.Core().compile_model(b).infer({"x": X})["y"])


def test_the_blob_just_written_stays_even_over_budget(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b = _paths(tmp_path, 2)
    core = rt.Core(cache_dir=cache, cache_max_bytes=0)
    core.compile_model(a)
    (first,) = _blobs(cache)
    core.compile_model(b)
    (second,) = _blobs(cache)
    assert second != first
    assert core.compile_model(b).compile_info["cache"] == "hit"


def test_without_a_budget_nothing_is_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    core = rt.Core(cache_dir=cache)
    for path in _paths(tmp_path, 3):
        core.compile_model(path)
    assert len(_blobs(cache)) == 3


def test_prune_drops_stale_temporaries_and_digests_of_vanished_files(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b = _paths(tmp_path, 2)
    core = rt.Core(cache_dir=cache)
    index = FileDigests(cache)
    for path in (a, b):
        core.compile_model(path)
        resolved = path.resolve()  # files this fresh are "racy": record them as if hashed later
        assert index.record(resolved, Signature.of(resolved.stat()), "0" * 64, time.time_ns() + 10**10)
    entries = sorted((cache / "digests").glob("*.json"))
    assert {json.loads(e.read_text())["path"] for e in entries} == {str(a.resolve()), str(b.resolve())}
    b.unlink()
    stale, fresh = cache / "k.mgblob.x1.tmp", cache / "k.mgblob.x2.tmp"
    stale.write_bytes(b"half a blob")
    fresh.write_bytes(b"a write in progress")
    _age(stale, STALE_TMP_SECONDS + 60)
    result = prune(cache, 1 << 40)
    assert stale in result.removed and fresh.exists() and not stale.exists()
    left = [json.loads(e.read_text())["path"] for e in (cache / "digests").glob("*.json")]
    assert left == [str(a.resolve())]
    assert len(_blobs(cache)) == 2 and result.freed_bytes == 0
    assert result.kept_bytes == sum(p.stat().st_size for p in _blobs(cache))


def test_prune_orders_by_last_use_and_reports_what_it_freed(tmp_path: Path) -> None:
    for i, age in enumerate((30, 10, 20)):
        p = tmp_path / f"{i}.mgblob"
        p.write_bytes(b"x" * 100)
        _age(p, age)
    result = prune(tmp_path, 150)
    assert [p.name for p in result.removed] == ["0.mgblob", "2.mgblob"]
    assert result.freed_bytes == 200 and result.kept_bytes == 100
    with pytest.raises(ValueError, match="max_bytes"):
        prune(tmp_path, -1)
    assert prune(tmp_path / "missing", 0).removed == []


def test_a_blob_pruned_by_another_process_mid_lookup_is_a_silent_miss(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    (path,) = _paths(tmp_path, 1)
    rt.Core(cache_dir=cache).compile_model(path)
    real = cache_mod.read_header

    def vanish_first(p: Path):  # the other process removes the blob between the exists() check and the read
        p.unlink()
        return real(p)

    monkeypatch.setattr(cache_mod, "read_header", vanish_first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = rt.Core(cache_dir=cache).compile_model(path)
    assert compiled.compile_info["cache"] == "miss"
    np.testing.assert_array_equal(compiled.infer({"x": X})["y"], rt.Core().compile_model(path).infer({"x": X})["y"])


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_cache_max_bytes_is_checked(bad) -> None:
    with pytest.raises(rt.ConfigError, match="cache_max_bytes"):
        rt.Core(cache_max_bytes=bad)
    core = rt.Core(cache_max_bytes=1 << 30)
    assert core.get_property("cache_max_bytes") == 1 << 30

