"""Core: options, model reading and compilation (with the compiled-model cache)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from . import flags
from .arena import Arena
from .cache import ModelCache, external_files
from .cache.digests import FileDigests, digest_file
from .compiled import CompiledModel
from .config import MemoryConfig
from .errors import ConfigError
from .frontend import Model, ModelSource, to_graph
from .frontend.loader import digest_of, model_digest, model_from_bytes
from .frontend.loader import read_model as _read_model
from .ir import Graph, TensorInfo, describe, shape_str
from .memory import MODES
from .passes import PassContext, run_passes
from .release import _malloc_trim


def _load(source: ModelSource | _FileBytes, digest: str | None) -> Model:
    """The model to compile; ``digest`` is its bytes' SHA-256 when the cache computed it, else None.

    Without a cache nothing reads the key, so the bytes are not hashed at all.
    """
    if isinstance(source, _FileBytes):
        if source.data is None:  # the digest index vouched for the file: read it now, on a miss
            return _read_model(source.path)  # and hash it: the check after this compares
        return model_from_bytes(source.data, source.path, digest)
    return _read_model(source, digest=digest, hash_bytes=False)


_PROPERTIES = ("enable_mmap", "cache_dir", "compile_threads", "memory_config", "trim_on_release", "cache_verify",
               "cache_max_bytes")


class Core:
    """Holds options and, under static_memory_policy 1/2/4, the arena shared by its models."""

    def __init__(
        self, *, enable_mmap: bool = True, cache_dir: str | os.PathLike | None = None,
        compile_threads: int | None = None, memory_config: MemoryConfig | None = None,
        trim_on_release: bool = False, cache_verify: str = "header", cache_max_bytes: int | None = None,
    ) -> None:
        self._props: dict[str, Any] = {}
        self._cache: ModelCache | None = None
        self.set_property({
            "enable_mmap": enable_mmap, "cache_dir": cache_dir, "compile_threads": compile_threads,
            "memory_config": memory_config or MemoryConfig(), "trim_on_release": trim_on_release,
            "cache_verify": cache_verify, "cache_max_bytes": cache_max_bytes,
        })

    # -------------------------------------------------------------- properties
    def get_property(self, name: str) -> Any:
        if name not in self._props:
            raise ConfigError(f"unknown property {name!r}; known: {list(_PROPERTIES)}")
        return self._props[name]

    def set_property(self, props: Mapping[str, Any]) -> None:
        for name, value in props.items():
            if name not in _PROPERTIES:
                raise ConfigError(f"unknown property {name!r}; known: {list(_PROPERTIES)}")
            self._props[name] = self._validate(name, value)
        if "memory_config" in props:
            cfg: MemoryConfig = self._props["memory_config"]
            self._shared_arena = Arena(size_classes=cfg.size_classes, shared=True) if cfg.shared_arena else None

    @staticmethod
    def _validate(name: str, value: Any) -> Any:
        if name in ("enable_mmap", "trim_on_release"):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            return value
        if name == "compile_threads":
            if value is None:
                return os.cpu_count() or 1
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"compile_threads must be a positive int, got {value!r}")
            return value
        if name == "memory_config":
            if not isinstance(value, MemoryConfig):
                raise ConfigError(f"memory_config must be a runtime.MemoryConfig, got {type(value).__name__}")
            return value
        if name == "cache_dir":
            return None if value is None else os.path.expanduser(os.fspath(value))
        if name == "cache_verify":
            if value not in ("header", "full"):
                raise ConfigError(f"cache_verify must be 'header' or 'full', got {value!r}")
            return value
        if name == "cache_max_bytes":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"cache_max_bytes must be None or an int >= 0, got {value!r}")
            return value
        return value

    @property
    def memory_config(self) -> MemoryConfig:
        return self._props["memory_config"]

    @property
    def shared_arena(self) -> Arena | None:
        return self._shared_arena

    # ------------------------------------------------------------------ models
    def read_model(self, source: ModelSource) -> Model:
        """Read a model from a path, bytes or an onnx.ModelProto."""
        return _read_model(source)

    def compile_model(
        self, model: ModelSource, *, memory_mode: str | None = None, keep: Iterable[str] = (),
        reduce_constant: bool = True, ignore_input_with_initializer: bool = True,
        disable_passes: Iterable[str] = (), input_shapes: Mapping[str, Iterable[int]] | None = None,
    ) -> CompiledModel:
        """Compile a Model, path, bytes or ModelProto under a memory mode (default ``"default"``).

        ``keep`` names intermediates that stay readable after inference; ``input_shapes``
        fixes symbolic input dims at compile time so memory is planned before the first run.
        With ``cache_dir`` set, a compiled blob is imported when present (a path is then not
        even parsed) and exported after a cold compile.
        """
        start = time.perf_counter()
        mode = self._resolve_mode(memory_mode)
        keep = tuple(keep)
        disable = frozenset(disable_passes) | flags.DISABLE_PASSES
        shapes = None if not input_shapes else {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}
        cache = self._model_cache()
        info: dict[str, Any] = {"cache": "off"}
        key = None
        source: ModelSource | _FileBytes = model
        options = {
            "memory_mode": mode, "keep": sorted(keep), "disable_passes": sorted(disable),
            "ignore_input_with_initializer": ignore_input_with_initializer, "input_shapes": shapes,
            "atomic_clean_policy": self.memory_config.atomic_clean_policy,
            "static_memory_policy": self.memory_config.static_memory_policy,
        }
        digest = ""
        index: FileDigests | None = None
        if cache is not None:
            index = None if cache.verify == "full" else FileDigests(cache.directory)
            source, digest, base_dir = _source_digest(model, index)
            key = cache.key(digest, options)
            hit = cache.load(key, mmap_weights=self._props["enable_mmap"], base_dir=base_dir)
            if hit is not None:
                compiled = CompiledModel(self, hit.graph, mode=mode, keep=keep, preplanned=hit.plan)
                compiled.compile_info = {"cache": "hit", "blob": str(cache.path(key)),
                                         "seconds": time.perf_counter() - start}
                return compiled
            info = {"cache": "miss"}
        m = _load(source, digest or None)
        if cache is not None and index is not None and isinstance(source, _FileBytes) and source.data is None \
                and m._digest != digest:
            # The file changed between its stat and its read (or the index was wrong): key what was parsed.
            index.forget(source.path.resolve())
            key = cache.key(model_digest(m), options)
        del model, source  # the file's bytes, when the cache read them: not needed once parsed
        threads = self._props["compile_threads"]
        externals = None
        with ThreadPoolExecutor(threads, thread_name_prefix="compile") if threads > 1 else _no_pool() as pool:
            graph = to_graph(m, mmap=self._props["enable_mmap"],
                             ignore_input_with_initializer=ignore_input_with_initializer, pool=pool)
            if cache is not None:
                externals = external_files(m.proto, m.base_dir) if m.proto is not None else []
            if reduce_constant and m.source != "proto":
                m.release()  # ailia's reduce_constant: drop the protobuf before the passes' peak
            graph = _apply_input_shapes(graph, shapes)
            missing = [k for k in keep if not _defines(graph, k)]
            if missing:
                raise ConfigError(f"keep names unknown tensor(s) {describe(missing)}")
            ctx = PassContext(protected=frozenset(keep), input_infos={v.name: v.info for v in graph.inputs}, pool=pool)
            graph = run_passes(graph, ctx, disable)
        compiled = CompiledModel(self, graph, mode=mode, keep=keep, pass_stats=ctx.stats,
                                 source=m if not reduce_constant else None)
        if cache is not None and key is not None and externals is not None:
            exported = cache.store(key, compiled.graph, compiled.static_plan, externals, m.base_dir)
            info = {"cache": "miss" if exported is not None else "error", "blob": str(cache.path(key)),
                    "export_seconds": exported}
        info["seconds"] = time.perf_counter() - start
        compiled.compile_info = info
        return compiled

    def _model_cache(self) -> ModelCache | None:
        directory = self._props["cache_dir"]
        if directory is None or not self.supports("model_caching"):
            return None
        if self._cache is None or self._cache.directory != Path(directory):
            self._cache = ModelCache(Path(directory), verify=self._props["cache_verify"])
        self._cache.verify = self._props["cache_verify"]
        self._cache.max_bytes = self._props["cache_max_bytes"]
        return self._cache

    def _resolve_mode(self, memory_mode: str | None) -> str:
        policy = self.memory_config.static_memory_policy
        if memory_mode is None:
            return "arena" if policy else "default"
        if memory_mode not in MODES:
            raise ConfigError(f"unknown memory_mode {memory_mode!r}; choose one of {list(MODES)}")
        if policy and memory_mode != "arena":
            raise ConfigError(
                f"static_memory_policy={policy} plans memory in an arena; use memory_mode='arena' (or leave it unset)"
            )
        return memory_mode

    def supports(self, feature: str) -> bool:
        """Whether an optional capability is available here: check in advance, then use it.

        ``"model_caching"`` is False when ``MEMGATE_NO_CACHE=1``; ``cache_dir`` is then ignored.
        """
        if feature == "model_caching":
            return not flags.NO_CACHE
        if feature == "malloc_trim":
            return _malloc_trim() is not None
        return feature in ("memory_modes", "static_memory_policy", "mmap")


@contextlib.contextmanager
def _no_pool() -> Iterator[None]:
    yield None


def _source_digest(
    model: ModelSource, index: FileDigests | None
) -> tuple[ModelSource | _FileBytes, str, Path | None]:
    """(what to compile on a miss, the digest of the model bytes, the folder for external data).

    A path is hashed but not parsed, so a cache hit never touches protobuf; with an ``index`` an
    unchanged file is not even read (``cache.digests``).
    """
    if isinstance(model, Model):
        return model, model_digest(model), model.base_dir
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        data, digest = digest_file(path, index)
        return _FileBytes(data, path), digest, path.resolve().parent
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), digest_of(model), None
    if isinstance(model, onnx.ModelProto):
        return model, digest_of(model.SerializeToString()), None
    return model, "", None


@dataclass
class _FileBytes:
    """A model file hashed for its key (``data`` None: known by the digest index); parsed only on a miss."""

    data: bytes | None
    path: Path


def _defines(graph: Graph, name: str) -> bool:
    return name in graph.constants or name in graph.input_names or any(name in n.outputs for n in graph.nodes)


def _apply_input_shapes(graph: Graph, shapes: Mapping[str, Iterable[int]] | None) -> Graph:
    if not shapes:
        return graph
    inputs = []
    names = set(graph.input_names)
    unknown = set(shapes) - names
    if unknown:
        raise ConfigError(f"input_shapes names unknown input(s) {describe(unknown)}; inputs: {describe(names)}")
    for v in graph.inputs:
        if v.name in shapes:
            shape = tuple(int(d) for d in shapes[v.name])
            declared = v.info.shape
            if declared != (None,) and (len(declared) != len(shape) or any(
                    isinstance(d, int) and d != s for d, s in zip(declared, shape))):
                raise ConfigError(
                    f"input_shapes[{v.name!r}]={list(shape)} conflicts with declared {shape_str(declared)}")
            v = type(v)(v.name, TensorInfo(v.info.dtype, shape))
        inputs.append(v)
    return graph.replace(inputs=inputs)


