"""The digest index that lets a cache hit by path skip reading the model file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime as rt
from runtime import core as core_module
from runtime.cache import digests
from runtime.cache.digests import FileDigests, Signature, digest_file
from runtime.frontend import loader
from runtime.frontend.loader import digest_of

X = np.arange(12, dtype=np.float32).reshape(1, 12)


def scale_model(scale: float) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((1, 12), scale, np.float32), "w")
    g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "scale",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _age(path: Path, seconds: float = 60.0) -> None:
    """Set mtime back; ctime stays 'now', so the racy window is switched off where needed."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


@pytest.fixture
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests, "RACY_SECONDS", 0.0)


def test_an_unchanged_file_is_read_once(tmp_path: Path, no_racy_window: None) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"model bytes")
    index = FileDigests(tmp_path / "cache")
    data, first = digest_file(path, index)
    assert data == b"model bytes" and first == digest_of(b"model bytes")
    data, again = digest_file(path, index)
    assert data is None and again == first


def test_same_size_rewrite_with_the_old_mtime_is_hashed_again(tmp_path: Path, no_racy_window: None) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"aaaa")
    index = FileDigests(tmp_path / "cache")
    _, old = digest_file(path, index)
    st = path.stat()
    path.write_bytes(b"bbbb")  # same size; mtime put back: only ctime tells
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    data, new = digest_file(path, index)
    assert data == b"bbbb" and new == digest_of(b"bbbb") != old


def test_a_file_replaced_by_rename_is_hashed_again(tmp_path: Path, no_racy_window: None) -> None:
    path, other = tmp_path / "m.bin", tmp_path / "n.bin"
    path.write_bytes(b"aaaa")
    index = FileDigests(tmp_path / "cache")
    digest_file(path, index)
    other.write_bytes(b"cccc")
    os.replace(other, path)
    data, new = digest_file(path, index)
    assert data == b"cccc" and new == digest_of(b"cccc")


def test_a_recently_changed_file_is_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"fresh")  # ctime is now: within the racy window
    index = FileDigests(tmp_path / "cache")
    assert digest_file(path, index)[0] == b"fresh"
    assert digest_file(path, index)[0] == b"fresh"  # read again: nothing was remembered
    assert not index.directory.exists() or not any(index.directory.iterdir())


@pytest.mark.parametrize("body", ["not json", "[]", '{"path": "elsewhere"}', '{"path": "%s", "signature": {}}'])
def test_a_malformed_or_foreign_entry_is_ignored(tmp_path: Path, no_racy_window: None, body: str) -> None:
    path = (tmp_path / "m.bin").resolve()
    path.write_bytes(b"data")
    index = FileDigests(tmp_path / "cache")
    digest_file(path, index)
    entry = next(index.directory.iterdir())
    entry.write_text(body.replace("%s", str(path)))
    assert digest_file(path, index) == (b"data", digest_of(b"data"))


def test_the_signature_covers_inode_size_and_both_times(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"x")
    st = path.stat()
    assert Signature.of(st) == Signature(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def test_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(rt.ModelLoadError, match="no such model file"):
        digest_file(tmp_path / "absent.onnx", FileDigests(tmp_path))


# ------------------------------------------------------------------ through Core


def _fail_read(*_: object) -> bytes:
    raise AssertionError("the model file was read")


def test_cache_hit_by_path_reads_nothing_and_a_changed_model_is_recompiled(
    tmp_path: Path, no_racy_window: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(scale_model(2.0), path)
    core = rt.Core(cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(core.compile_model(path).infer({"x": X})["y"], 2 * X)
    with monkeypatch.context() as m:
        m.setattr(digests, "read_file", _fail_read)
        hit = core.compile_model(path)
    assert hit.compile_info["cache"] == "hit"
    np.testing.assert_array_equal(hit.infer({"x": X})["y"], 2 * X)
    st = path.stat()
    onnx.save(scale_model(3.0), path)  # same size, mtime put back
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = core.compile_model(path)
    assert changed.compile_info["cache"] == "miss"
    np.testing.assert_array_equal(changed.infer({"x": X})["y"], 3 * X)


def test_full_verification_always_hashes_the_file(tmp_path: Path, no_racy_window: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(scale_model(2.0), path)
    core = rt.Core(cache_dir=tmp_path / "cache", cache_verify="full")
    core.compile_model(path)
    monkeypatch.setattr(digests, "read_file", _fail_read)
    with pytest.raises(AssertionError, match="was read"):
        core.compile_model(path)


def test_a_file_changed_between_lookup_and_parse_is_keyed_by_what_was_parsed(
    tmp_path: Path, no_racy_window: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remembered digest whose blob is missing: the file is parsed, and the blob is keyed by its bytes."""
    path = tmp_path / "m.onnx"
    onnx.save(scale_model(2.0), path)
    cache = tmp_path / "cache"
    _age(path)
    FileDigests(cache).record(path.resolve(), Signature.of(path.stat()), "0" * 64, 2**62)  # a wrong digest
    core = rt.Core(cache_dir=cache)
    first = core.compile_model(path)
    assert first.compile_info["cache"] == "miss"
    np.testing.assert_array_equal(first.infer({"x": X})["y"], 2 * X)
    second = rt.Core(cache_dir=cache, cache_verify="full").compile_model(path)
    assert second.compile_info["cache"] == "hit"  # stored under the digest of the bytes parsed


def test_model_bytes_are_hashed_only_when_a_cache_needs_the_key(tmp_path: Path, monkeypatch) -> None:
    # 168 MiB of U^2-Net take 0.1 s to hash: a compile without a cache skips it, a miss hashes once.
    path = tmp_path / "m.onnx"
    onnx.save(scale_model(2.0), path)
    size = path.stat().st_size
    hashed: list[int] = []

    def counting(data: bytes) -> str:
        if len(data) == size:
            hashed.append(size)
        return digest_of(data)

    for module in (loader, core_module, digests):
        monkeypatch.setattr(module, "digest_of", counting)
    plain = rt.Core().compile_model(path)
    assert hashed == []
    cached = rt.Core(cache_dir=tmp_path / "cache").compile_model(path)
    assert cached.compile_info["cache"] == "miss" and hashed == [size]
    assert rt.Core().read_model(path)._digest == digest_of(path.read_bytes())  # a Model keeps it for later
    np.testing.assert_array_equal(plain.infer({"x": X})["y"], cached.infer({"x": X})["y"])
