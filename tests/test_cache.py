"""The compiled-model cache, mmap'd weights, compile threads and release_memory."""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt
from runtime import flags
from runtime.cache import blob

RNG = np.random.default_rng(5)


def conv_model(channels: int = 16, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((channels, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((channels,)).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((4, channels, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([2.0], np.float32), "two")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Mul", ["two", "two"], ["four"]),  # folded at compile time
             helper.make_node("Conv", ["r1", "w2"], ["c2"]),
             helper.make_node("Mul", ["c2", "four"], ["y"])]
    g = helper.make_graph(nodes, "cached", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


X = RNG.standard_normal((1, 3, 10, 10)).astype(np.float32)


def _save(tmp_path: Path, model: onnx.ModelProto, name: str = "m.onnx", external: bool = False) -> Path:
    path = tmp_path / name
    if external:
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=name + ".data", size_threshold=0)
    else:
        onnx.save(model, path)
    return path


def _blobs(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.mgblob"))


def test_hit_after_miss_gives_identical_outputs(tmp_path: Path) -> None:
    path = _save(tmp_path, conv_model())
    cache = tmp_path / "cache"
    ref = rt.Core().compile_model(path).infer({"x": X})["y"]
    first = rt.Core(cache_dir=cache).compile_model(path)
    assert first.compile_info["cache"] == "miss" and first.compile_info["export_seconds"] >= 0
    assert len(_blobs(cache)) == 1
    second = rt.Core(cache_dir=cache).compile_model(path)
    assert second.compile_info["cache"] == "hit"
    np.testing.assert_array_equal(second.infer({"x": X})["y"], ref)
    np.testing.assert_array_equal(first.infer({"x": X})["y"], ref)
    assert second.memory_stats()["weights_bytes"] == first.memory_stats()["weights_bytes"]


def test_hit_through_model_object_and_proto(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    core = rt.Core(cache_dir=cache)
    core.compile_model(conv_model())
    assert core.compile_model(conv_model()).compile_info["cache"] == "hit"
    path = _save(tmp_path, conv_model())
    core.compile_model(core.read_model(path))
    assert core.compile_model(core.read_model(path)).compile_info["cache"] == "hit"


def test_hit_by_path_does_not_parse_the_protobuf(tmp_path: Path, monkeypatch) -> None:
    path = _save(tmp_path, conv_model())
    cache = tmp_path / "cache"
    rt.Core(cache_dir=cache).compile_model(path)

    def refuse(*a, **k):
        raise AssertionError("the ONNX protobuf was parsed on a cache hit")

    monkeypatch.setattr(onnx.ModelProto, "ParseFromString", refuse)
    compiled = rt.Core(cache_dir=cache).compile_model(str(path))
    assert compiled.compile_info["cache"] == "hit"
    assert compiled.infer({"x": X})["y"].shape == (1, 4, 10, 10)


def test_options_that_change_the_blob_change_the_key(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    core = rt.Core(cache_dir=cache)
    core.compile_model(conv_model(), memory_mode="arena")
    core.compile_model(conv_model(), memory_mode="reduce")
    core.compile_model(conv_model(), memory_mode="arena", disable_passes={"fuse_activation"})
    core.compile_model(conv_model(seed=1), memory_mode="arena")
    assert len(_blobs(cache)) == 4
    # Load-time options are not in the key.
    other = rt.Core(cache_dir=cache, enable_mmap=False, compile_threads=1)
    assert other.compile_model(conv_model(), memory_mode="arena").compile_info["cache"] == "hit"


def _corrupt_and_recompile(tmp_path: Path, damage, *, verify: str = "header", expect_warning: bool = True) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = _save(tmp_path, conv_model())
    cache = tmp_path / "cache"
    ref = rt.Core().compile_model(path).infer({"x": X})["y"]
    rt.Core(cache_dir=cache).compile_model(path)
    (b,) = _blobs(cache)
    damage(b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = rt.Core(cache_dir=cache, cache_verify=verify).compile_model(path)
    cache_warnings = [w for w in caught if issubclass(w.category, rt.CacheWarning)]
    if expect_warning:
        assert cache_warnings, "a bad blob must be reported"
        assert compiled.compile_info["cache"] == "miss"
        np.testing.assert_array_equal(compiled.infer({"x": X})["y"], ref)
        # The recompilation rewrote a valid blob.
        assert rt.Core(cache_dir=cache).compile_model(path).compile_info["cache"] == "hit"
    else:
        assert not cache_warnings


def test_truncated_blob_is_detected(tmp_path: Path) -> None:
    _corrupt_and_recompile(tmp_path, lambda b: b.write_bytes(b.read_bytes()[:-100]))


def test_truncated_header_is_detected(tmp_path: Path) -> None:
    _corrupt_and_recompile(tmp_path, lambda b: b.write_bytes(b.read_bytes()[:60]))


def _flip(b: Path, where: int) -> None:
    data = bytearray(b.read_bytes())
    data[where] ^= 0x40
    b.write_bytes(bytes(data))


def test_bit_flip_in_header_is_detected(tmp_path: Path) -> None:
    _corrupt_and_recompile(tmp_path, lambda b: _flip(b, 100))


def test_bit_flip_in_data_needs_full_verification(tmp_path: Path) -> None:
    # Documented: the default check does not read the weights, so it cannot see this flip...
    _corrupt_and_recompile(tmp_path / "a", lambda b: _flip(b, b.stat().st_size - 8), expect_warning=False)
    # ...and cache_verify="full" does.
    _corrupt_and_recompile(tmp_path / "b", lambda b: _flip(b, b.stat().st_size - 8), verify="full")


def _rewrite_header(b: Path, change) -> None:
    data = b.read_bytes()
    magic, hlen, _ = struct.unpack("<8sQ32s", data[:48])
    header = json.loads(data[48:48 + hlen])
    change(header)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert len(raw) == hlen, "keep the header length so the data offsets stay valid"
    b.write_bytes(struct.pack("<8sQ32s", magic, hlen, hashlib.sha256(raw).digest()) + raw + data[48 + hlen:])


def test_blob_of_another_runtime_version_is_refused(tmp_path: Path) -> None:
    def change(h):
        h["runtime_version"] = "9" * len(h["runtime_version"])

    _corrupt_and_recompile(tmp_path, lambda b: _rewrite_header(b, change))


def test_foreign_blob_under_the_wrong_key_is_refused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    a, b = _save(tmp_path, conv_model(seed=0), "a.onnx"), _save(tmp_path, conv_model(seed=1), "b.onnx")
    rt.Core(cache_dir=cache).compile_model(a)
    (blob_a,) = _blobs(cache)
    rt.Core(cache_dir=cache).compile_model(b)
    blob_b = next(p for p in _blobs(cache) if p != blob_a)
    blob_b.write_bytes(blob_a.read_bytes())  # model a's blob where model b's should be
    with pytest.warns(rt.CacheWarning, match="another model"):
        compiled = rt.Core(cache_dir=cache).compile_model(b)
    np.testing.assert_array_equal(compiled.infer({"x": X})["y"], rt.Core().compile_model(b).infer({"x": X})["y"])


def test_changed_external_data_makes_the_blob_stale(tmp_path: Path) -> None:
    path = _save(tmp_path, conv_model(), external=True)
    cache = tmp_path / "cache"
    rt.Core(cache_dir=cache).compile_model(path)
    assert rt.Core(cache_dir=cache).compile_model(path).compile_info["cache"] == "hit"
    # Rewrite the weights file with other values: same size, new mtime.
    data_file = path.with_name("m.onnx.data")
    weights = np.frombuffer(data_file.read_bytes(), np.float32) * 2
    st = data_file.stat()
    data_file.write_bytes(weights.tobytes())
    os.utime(data_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.warns(rt.CacheWarning, match="stale|changed"):
        compiled = rt.Core(cache_dir=cache).compile_model(path)
    np.testing.assert_array_equal(compiled.infer({"x": X})["y"], rt.Core().compile_model(path).infer({"x": X})["y"])


def test_crash_mid_write_leaves_no_valid_blob(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = _save(tmp_path, conv_model(channels=256))
    script = textwrap.dedent(f"""
        import os, sys, time
        import runtime as rt
        from runtime.cache import blob
        real = blob._iter_data
        calls = []
        def slow(arrays, entries):  # the first pass is the checksum, the second the write
            calls.append(1)
            for chunk in real(arrays, entries):
                yield chunk
                if len(calls) == 2:
                    sys.stdout.write("writing\\n"); sys.stdout.flush()
                    time.sleep(30)
        blob._iter_data = slow
        rt.Core(cache_dir={str(cache)!r}).compile_model({str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"  # the blob is half written now
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert list(cache.glob("*.tmp")), "the writer was killed mid-write"
    assert not _blobs(cache), "a killed writer must not leave a blob under the final name"
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.CacheWarning)
        assert rt.Core(cache_dir=cache).compile_model(path).compile_info["cache"] == "miss"


def _compile_in_child(args) -> str:
    cache, path = args
    compiled = rt.Core(cache_dir=cache).compile_model(path)
    return compiled.compile_info["cache"]


def test_concurrent_processes_end_with_one_valid_blob(tmp_path: Path) -> None:
    cache, path = str(tmp_path / "cache"), str(_save(tmp_path, conv_model(channels=64)))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_compile_in_child, [(cache, path)] * 4)
    assert set(results) <= {"hit", "miss"}
    assert len(_blobs(Path(cache))) == 1
    assert not list(Path(cache).glob("*.tmp")), "temporary files are cleaned up"
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.CacheWarning)
        assert rt.Core(cache_dir=cache).compile_model(path).compile_info["cache"] == "hit"


def test_unwritable_cache_dir_warns_once_and_compiles(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    core = rt.Core(cache_dir=blocker / "cache")
    with pytest.warns(rt.CacheWarning, match="cannot write"):
        compiled = core.compile_model(conv_model())
    assert compiled.infer({"x": X})["y"].shape == (1, 4, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rt.CacheWarning)
        core.compile_model(conv_model(seed=2))  # warned once already: silent now


def test_full_disk_warns_and_compiles(tmp_path: Path, monkeypatch) -> None:
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("runtime.cache.write_blob", full)
    with pytest.warns(rt.CacheWarning, match="No space left"):
        compiled = rt.Core(cache_dir=tmp_path / "cache").compile_model(conv_model())
    assert compiled.compile_info["cache"] == "error"
    assert compiled.infer({"x": X})["y"].shape == (1, 4, 10, 10)


def test_caching_switched_off_ignores_cache_dir_silently(tmp_path: Path) -> None:
    with flags.override(NO_CACHE=True):
        core = rt.Core(cache_dir=tmp_path / "cache")
        assert core.supports("model_caching") is False
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compiled = core.compile_model(conv_model())
        assert compiled.compile_info["cache"] == "off"
    assert not (tmp_path / "cache").exists()
    assert rt.Core().supports("model_caching") is True


def _mapped(arr: np.ndarray) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, (mmap.mmap, np.memmap)):
            return True
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return False


@pytest.mark.parametrize("enable_mmap", [True, False])
def test_weights_from_cache_are_mapped_only_with_mmap(tmp_path: Path, enable_mmap: bool) -> None:
    cache = tmp_path / "cache"
    rt.Core(cache_dir=cache).compile_model(conv_model())
    compiled = rt.Core(cache_dir=cache, enable_mmap=enable_mmap).compile_model(conv_model())
    weights = list(compiled.graph.constants.values())
    assert weights and all(_mapped(w) == enable_mmap for w in weights)
    assert all(not w.flags.writeable for w in weights) or not enable_mmap
    for w in weights:
        assert w.ctypes.data % blob.ALIGN == 0 or not enable_mmap


@pytest.mark.parametrize("enable_mmap", [True, False])
def test_external_data_mapped_only_with_mmap(tmp_path: Path, enable_mmap: bool) -> None:
    path = _save(tmp_path, conv_model(), external=True)
    compiled = rt.Core(enable_mmap=enable_mmap).compile_model(path, disable_passes={"fold_constants"})
    w1 = compiled.graph.constants["w1"]
    assert _mapped(w1) == enable_mmap


def test_compile_threads_do_not_change_results() -> None:
    outs = [rt.Core(compile_threads=n).compile_model(conv_model()).infer({"x": X})["y"] for n in (1, 2, 4)]
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_properties_round_trip_and_validate(tmp_path: Path) -> None:
    core = rt.Core()
    assert core.get_property("enable_mmap") is True
    assert core.get_property("cache_dir") is None
    assert core.get_property("compile_threads") == (os.cpu_count() or 1)
    core.set_property({"cache_dir": tmp_path, "compile_threads": 1, "trim_on_release": True})
    assert core.get_property("cache_dir") == str(tmp_path) and core.get_property("compile_threads") == 1
    with pytest.raises(rt.ConfigError, match="unknown property"):
        core.get_property("nope")
    with pytest.raises(rt.ConfigError):
        core.set_property({"compile_threads": 0})
    with pytest.raises(rt.ConfigError):
        rt.Core(cache_verify="sometimes")
    with pytest.raises(rt.ConfigError):
        rt.Core(enable_mmap="yes")  # type: ignore[arg-type]


def test_release_memory_reports_what_it_did() -> None:
    result = rt.release_memory()
    assert isinstance(result["gc_collected"], int)
    assert result["malloc_trim"] in (True, False) if sys.platform.startswith("linux") else result["malloc_trim"] is None
    assert result["note"]


def test_trim_on_release_calls_release_when_the_model_dies(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr("runtime.compiled.release_memory", lambda collect=True: calls.append(collect))
    compiled = rt.Core(trim_on_release=True).compile_model(conv_model())
    del compiled
    import gc

    gc.collect()
    assert calls == [False]
    rt.Core().compile_model(conv_model())
    gc.collect()
    assert calls == [False]


def test_cache_dir_expands_the_home_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    core = rt.Core(cache_dir="~/.cache/memgate")
    assert core.get_property("cache_dir") == str(tmp_path / ".cache" / "memgate")
    path = _save(tmp_path, conv_model())
    core.compile_model(path)
    assert len(_blobs(tmp_path / ".cache" / "memgate")) == 1
