"""What a cell is (``CellSpec``, sent to the child as JSON) and what it gave (``CellResult``).

A leaf module: standard library only, so the child imports it before anything it measures.

Iterations: with ``warmup=None`` the child runs ``iterations`` and the analysis finds where
warm-up ends; with ``warmup=W`` it runs ``W + iterations`` and the first ``W`` are excluded.
Every iteration is sampled either way, so the series always shows the warm-up.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "leak", "failed", "crashed", "timeout", "skipped")
#: Statuses that make ``memgate`` exit 1.
BAD_STATUSES = frozenset({"leak", "failed", "crashed", "timeout"})
#: Every per-iteration series a Linux child records (bytes, except Threads).
SERIES_FIELDS = ("VmRSS", "VmHWM", "VmSize", "VmPeak", "RssAnon", "RssFile", "RssShmem", "Threads")
#: The series the leak verdict is computed on: file-backed pages (mmap'd weights) are not a leak.
ANALYZED = ("VmRSS", "VmHWM", "RssAnon")
#: The pipeline name of a target cell: the user's callable instead of a runtime pipeline.
TARGET = "target"
#: A target naming a pytest test's body (the memleak marker on any test): ``pytest:<nodeid>``.
TEST_PREFIX = "pytest:"


class SpecError(ValueError):
    """A cell spec or result that does not fit the schema."""


@dataclass(frozen=True)
class CoreOptions:
    """Options of the runtime's Core (peers use what applies to them)."""

    enable_mmap: bool = True
    cache_dir: str | None = None
    compile_threads: int | None = 1  # 1 keeps runs comparable; None lets the runtime pick
    atomic_clean_policy: int = 0
    static_memory_policy: int = 0
    trim_on_release: bool = False


@dataclass(frozen=True)
class CellSpec:
    """One measured cell: a pipeline over a model, in one mode, runtime and allocator setup."""

    pipeline: str = "reinfer"
    model: str = "mlp"  # a zoo name or a path
    model_options: tuple[tuple[str, str], ...] = ()  # zoo generator keywords, e.g. (("size", "64"),)
    mode: str = "default"
    runtime: str = "builtin"
    allocator: str = "glibc"
    allocator_path: str | None = None
    tunables: tuple[tuple[str, str], ...] = ()
    iterations: int = 100
    warmup: int | None = None
    core: CoreOptions = field(default_factory=CoreOptions)
    trim: bool = False  # malloc_trim(0) after every iteration
    threads: int = 2  # for the "threads" pipeline
    graphs: int = 3  # for "multi_graph" when one model is named
    inject_leak_bytes: int = 0  # self-test: keep this much touched memory per iteration
    inject_fault: str = ""  # self-test of the harness: "signal:SEGV@3", "exit:3@2", "hang@1"
    tracemalloc: int = 0  # frames per traceback; 0 = off
    timeout: float = 600.0
    seed: int = 0
    target: str = ""  # "path/file.py:NAME", "package.module:NAME" or "pytest:<nodeid>" (pipeline "target")
    target_args: tuple[tuple[str, str], ...] = ()  # keyword arguments of the target, values as Python literals
    python: str = ""  # the child's interpreter (a user's venv); "" is memgate's own
    blas_kernel: str = ""  # OPENBLAS_CORETYPE for the child (recording baselines across kernels); "" = the CPU's

    def __post_init__(self) -> None:
        if self.target or self.pipeline == TARGET:
            check_target(self.target, self.target_args)
            # A target cell has no model or runtime: fixed values keep ids and baseline keys stable.
            for name, value in (("pipeline", TARGET), ("model", ""), ("mode", "default"), ("runtime", "python")):
                object.__setattr__(self, name, value)
        if self.iterations < 1:
            raise SpecError(f"iterations must be at least 1, got {self.iterations}")
        if self.warmup is not None and self.warmup < 0:
            raise SpecError(f"warmup must be 0 or more, got {self.warmup}")
        if self.threads < 1 or self.graphs < 1:
            raise SpecError("threads and graphs must be at least 1")
        if self.inject_leak_bytes < 0:
            raise SpecError(f"inject_leak_bytes must be 0 or more, got {self.inject_leak_bytes}")
        if self.timeout <= 0:
            raise SpecError(f"timeout must be positive, got {self.timeout}")

    @property
    def total_iterations(self) -> int:
        return self.iterations + (self.warmup or 0)

    @property
    def target_label(self) -> str:
        """The target as ids and baseline keys show it: a file by its name (paths differ between machines)."""
        if not self.target:
            return ""
        label = self.target
        if label.startswith(TEST_PREFIX):
            file, sep, rest = label[len(TEST_PREFIX):].partition("::")
            label = f"{TEST_PREFIX}{Path(file).name}{sep}{rest}"
        else:
            where, _, name = self.target.rpartition(":")
            label = (Path(where).name if target_kind(self.target) == "file" else where) + ":" + name
        if self.target_args:
            label += "[" + ",".join(f"{k}={v}" for k, v in self.target_args) + "]"
        return label

    @property
    def id(self) -> str:
        """A readable, stable name: ``pipeline/model/mode/runtime/allocator[/k=v,...]`` (``target/LABEL/allocator``)."""
        if self.target:
            parts = [TARGET, self.target_label, self.allocator]
            if self.tunables:
                parts.append(",".join(f"{k}={v}" for k, v in self.tunables))
            return "/".join(parts)
        model = Path(self.model).name if ("/" in self.model or self.model.endswith(".onnx")) else self.model
        if self.model_options:
            model += "[" + ",".join(f"{k}={v}" for k, v in self.model_options) + "]"
        parts = [self.pipeline, model, self.mode, self.runtime, self.allocator]
        if self.tunables:
            parts.append(",".join(f"{k}={v}" for k, v in self.tunables))
        if self.inject_leak_bytes:
            parts.append(f"leak={self.inject_leak_bytes}")
        return "/".join(parts)

    def replace(self, **changes: Any) -> CellSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tunables"] = [list(kv) for kv in self.tunables]
        d["model_options"] = [list(kv) for kv in self.model_options]
        d["target_args"] = [list(kv) for kv in self.target_args]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        d = dict(d)
        _check_keys(cls, d)
        core = d.pop("core", None) or {}
        _check_keys(CoreOptions, core)
        tunables = tuple((str(k), str(v)) for k, v in d.pop("tunables", ()) or ())
        options = tuple((str(k), str(v)) for k, v in d.pop("model_options", ()) or ())
        args = tuple((str(k), str(v)) for k, v in d.pop("target_args", ()) or ())
        return cls(core=CoreOptions(**core), tunables=tunables, model_options=options, target_args=args, **d)


def target_kind(target: str) -> str:
    """``"file"`` (``FILE.py:NAME``), ``"module"`` (``package.module:NAME``) or ``"test"`` (``pytest:<nodeid>``)."""
    if target.startswith(TEST_PREFIX):
        return "test"
    where = target.rpartition(":")[0]
    return "file" if where.endswith(".py") or "/" in where or "\\" in where else "module"


def check_target(target: str, args: tuple[tuple[str, str], ...] = ()) -> None:
    """Raise SpecError unless ``target`` is ``FILE.py:NAME``, ``package.module:NAME`` or ``pytest:<nodeid>``."""
    if not target:
        raise SpecError("a target cell needs a target: FILE.py:NAME or package.module:NAME")
    if target.startswith(TEST_PREFIX):
        if not target[len(TEST_PREFIX):].strip():
            raise SpecError(f"target {target!r} names no test: use pytest:<nodeid>")
    else:
        where, sep, name = target.rpartition(":")
        if not sep or not where or not name or not all(p.isidentifier() for p in name.split(".")):
            raise SpecError(f"target {target!r}: expected FILE.py:NAME or package.module:NAME "
                            f"(NAME a function or class, dotted for an attribute)")
        if target_kind(target) == "module" and not all(p.isidentifier() for p in where.split(".")):
            raise SpecError(f"target {target!r}: {where!r} is neither a .py file nor a dotted module name")
    for key, _ in args:
        if not key.isidentifier():
            raise SpecError(f"target argument {key!r} is not a Python keyword name")


def target_args_from(values: Any) -> tuple[tuple[str, str], ...]:
    """Keyword arguments (a mapping of Python values, or KEY/VALUE text pairs) as ``target_args`` text.

    Text goes to the child as written unless it would read as another literal there (``"16"``
    stays the string); every other value is spelled as its literal (``16``, ``[1, 2]``).
    """
    import ast

    pairs = values.items() if hasattr(values, "items") else values
    out = []
    for key, value in pairs:
        if isinstance(value, str):
            try:
                ast.literal_eval(value)
            except (ValueError, SyntaxError):
                out.append((str(key), value))
                continue
        out.append((str(key), repr(value)))
    return tuple(out)


@dataclass
class StageMemory:
    """Memory of one stage (create core, read, compile, ...): RSS before and after, and its peak.

    ``peak_method`` is ``clear_refs`` (the peak was reset at the stage start: exact) or ``hwm``
    (no reset allowed: the process high-water mark, an upper bound that may belong to an
    earlier stage; ``peak`` is then exact only when the stage raised it).

    The allocator is settled (``stress_tests.settle``) before the stage and before ``rss_after`` /
    ``anon_after`` are read, so those do not depend on the allocator's purge timers;
    ``rss_unsettled`` / ``anon_unsettled`` are the same readings taken just before settling (None
    where the allocator could not be settled: then the "after" figures are unsettled too).
    """

    stage: str
    rss_before: int | None = None
    rss_after: int | None = None
    anon_before: int | None = None
    anon_after: int | None = None
    peak: int | None = None
    peak_method: str = "clear_refs"
    seconds: float = 0.0
    rss_unsettled: int | None = None
    anon_unsettled: int | None = None

    @property
    def delta(self) -> int | None:
        return None if self.rss_after is None or self.rss_before is None else self.rss_after - self.rss_before

    @property
    def peak_delta(self) -> int | None:
        return None if self.peak is None or self.rss_before is None else self.peak - self.rss_before


@dataclass
class Applied:
    """What the child really ran with, and the proof that the allocator was the one asked for."""

    allocator: str = "glibc"
    allocator_path: str | None = None
    allocator_version: str | None = None
    verified: bool = False
    evidence: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    tunables: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class CellResult:
    """The outcome of one cell, whatever happened to the child."""

    spec: CellSpec
    status: str
    reason: str = ""
    series: dict[str, list[int | None]] = field(default_factory=dict)
    latency: list[float] = field(default_factory=list)
    stages: list[StageMemory] = field(default_factory=list)
    applied: Applied | None = None
    verdict: str | None = None
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory_stats: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    hunt: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    signal: str | None = None
    stderr_tail: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise SpecError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def iterations_done(self) -> int:
        return max((len(v) for v in self.series.values()), default=0)

    @property
    def bad(self) -> bool:
        return self.status in BAD_STATUSES

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        d = dict(d)
        _check_keys(cls, d)
        spec = CellSpec.from_dict(d.pop("spec"))
        stages = [_build(StageMemory, s) for s in d.pop("stages", [])]
        applied = d.pop("applied", None)
        return cls(spec=spec, stages=stages, applied=None if applied is None else _build(Applied, applied), **d)


def _check_keys(cls: type, d: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise SpecError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")


def _build(cls: type, d: dict[str, Any]) -> Any:
    _check_keys(cls, d)
    return cls(**d)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a torn one."""
    from .atomic import write_atomic

    write_atomic(path, json.dumps(finite(data), indent=1, allow_nan=False) + "\n")


def finite(data: Any) -> Any:
    """``data`` with NaN and infinities as None: strict JSON has no spelling for them."""
    if isinstance(data, float):
        return data if data == data and data not in (float("inf"), float("-inf")) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data

