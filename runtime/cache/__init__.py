"""The compiled-model cache: key, lookup and export around the blob format (see ``blob``).

The cache key is the SHA-256 of: the model's bytes (the file as read, or the serialized
protobuf), the runtime version, the blob format version, numpy's version (folded weights
are computed by numpy), and every option that changes the blob: memory_mode, keep,
disabled passes, ignore_input_with_initializer, input_shapes and the MemoryConfig. Options
that only change how a blob is loaded (enable_mmap, cache_verify, compile_threads) are not
in the key. External data files are recorded in the blob with size and mtime and checked
on every hit (their content too with ``cache_verify="full"``): a changed file makes the
blob stale, and it is recompiled. The model file's own digest is remembered by its stat
signature (``digests``), so a hit by path does not read an unchanged file. With a size
budget (``Core(cache_max_bytes=...)``) each export prunes the least recently used blobs
(``prune``); each import marks its blob as used.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..errors import CacheWarning, ModelLoadError
from ..frontend.loader import external_location
from ..ir import Graph
from ..memory import MemoryPlan
from ..version import __version__
from .blob import FORMAT_VERSION, BlobContents, BlobError, read_blob, read_header, write_blob
from .budget import BLOB_SUFFIX, PruneResult, prune, touch

__all__ = ["BlobError", "ModelCache", "PruneResult", "external_files", "file_digest", "prune"]


def file_digest(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def external_files(proto: onnx.ModelProto, base_dir: Path | None) -> list[dict[str, Any]]:
    """The external data files a model reads, with size and mtime for staleness checks."""
    seen: dict[str, dict[str, Any]] = {}
    for t in proto.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        if loc in seen:
            continue
        path = external_location(base_dir, loc, t.name)
        try:
            st = path.stat()
        except OSError as e:
            raise ModelLoadError(f"tensor '{t.name}': external data file {path} cannot be read: {e}") from e
        seen[loc] = {"location": loc, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return list(seen.values())


@dataclass
class ModelCache:
    """One cache folder; problems warn once per Core and never fail a compilation."""

    directory: Path
    verify: str = "header"
    max_bytes: int | None = None  # the blobs' size budget; None: unbounded
    warned: set[str] = field(default_factory=set)

    def warn(self, kind: str, message: str) -> None:
        if kind in self.warned:
            return
        self.warned.add(kind)
        warnings.warn(message, CacheWarning, stacklevel=4)

    def key(self, model_digest: str, options: dict[str, Any]) -> str:
        payload = {"model": model_digest, "runtime": __version__, "format": FORMAT_VERSION,
                   "numpy": np.__version__, "options": options}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key[:40]}{BLOB_SUFFIX}"

    def load(self, key: str, *, mmap_weights: bool, base_dir: Path | None) -> BlobContents | None:
        """The cached compilation for ``key``, or None (missing, or bad: warned, then recompiled)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            header, start = read_header(path)
            if header.get("key") != key or header.get("runtime_version") != __version__:
                raise BlobError(f"{path.name}: blob belongs to another model, options or runtime version")
            self._check_external(header, base_dir)
            contents = read_blob(path, header, start, mmap_weights=mmap_weights, verify_data=self.verify == "full")
        except FileNotFoundError:
            return None  # pruned by another process since the check above: an ordinary miss
        except BlobError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                return None
            warnings.warn(f"compiled-model cache: {e}; recompiling", CacheWarning, stacklevel=3)
            return None
        touch(path)
        return contents

    def _check_external(self, header: dict[str, Any], base_dir: Path | None) -> None:
        for ext in header.get("external_files", []):
            try:
                path = external_location(base_dir, ext["location"], "?")
                st = path.stat()
            except (OSError, ModelLoadError) as e:
                raise BlobError(f"external data '{ext['location']}' is gone: {e}") from e
            if st.st_size != ext["size"] or st.st_mtime_ns != ext["mtime_ns"]:
                raise BlobError(f"external data '{ext['location']}' changed since the blob was written (stale)")
            if self.verify == "full" and "sha256" in ext and file_digest(path) != ext["sha256"]:
                raise BlobError(f"external data '{ext['location']}' content changed (stale)")

    def store(self, key: str, graph: Graph, plan: MemoryPlan | None, externals: list[dict[str, Any]],
              base_dir: Path | None) -> float | None:
        """Export a compilation; the seconds it took, or None when the cache is unusable (warned once)."""
        start = time.perf_counter()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.verify == "full":
                for ext in externals:
                    ext["sha256"] = file_digest(external_location(base_dir, ext["location"], "?"))
            meta = {"format_version": FORMAT_VERSION, "runtime_version": __version__, "key": key,
                    "external_files": externals, "created": time.time()}
            write_blob(self.path(key), graph, plan, meta)
            if self.max_bytes is not None:
                prune(self.directory, self.max_bytes, keep=[self.path(key)])
        except BlobError as e:
            self.warn("encode", f"compiled-model cache: cannot export this model ({e}); compiling without caching")
            return None
        except OSError as e:
            self.warn("write", f"compiled-model cache: cannot write to {self.directory} ({e.strerror or e}); "
                               "compiling without caching")
            return None
        return time.perf_counter() - start
