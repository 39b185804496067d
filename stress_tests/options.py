"""Command-line options, each defined once, shared by every command (and the pytest plugin).

``add_options(parser, CELL)`` adds the cell flags to an argparse parser (or a pytest option
group: ``Option.add_to`` passes argparse-style arguments, with an optional name prefix). In a
matrix, the flags marked ``multi`` take comma-separated lists, and ``all`` for every choice.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .adapters import MODES, RUNTIMES, runtime_names
from .allocators import ALLOCATORS, AllocatorError, parse_tunable
from .pipelines import PIPELINE_NAMES, PIPELINES
from .spec import CellSpec, CoreOptions, SpecError
from .units import parse_size


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _shard(text: str) -> Any:
    from .shard import parse_shard

    try:
        return parse_shard(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _key_value(text: str) -> tuple[str, str]:
    try:
        return parse_tunable(text)
    except AllocatorError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


@dataclass(frozen=True)
class Option:
    """One flag: its names, argparse keywords, and whether a matrix takes a list of it."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    choices: tuple[str, ...] = ()  # for ``multi`` lists, checked after splitting
    multi: bool = False

    @property
    def dest(self) -> str:
        return str(self.kwargs.get("dest") or self.flags[-1].lstrip("-").replace("-", "_"))

    def add_to(self, parser: Any, *, multi: bool = False, prefix: str = "") -> None:
        flags = [f"--{prefix}{f[2:]}" if f.startswith("--") else f for f in self.flags if not (prefix and f[1] != "-")]
        kwargs = dict(self.kwargs)
        kwargs.setdefault("dest", self.dest if not prefix else f"{prefix.replace('-', '_')}{self.dest}")
        if multi and self.multi:
            if kwargs.get("action") != "append":  # a list arrives as one string, split later
                kwargs.pop("type", None)
                more = ", or all)" if self.choices else ")"
                kwargs["help"] = kwargs.get("help", "") + " (comma-separated list" + more
        elif self.choices:
            kwargs["choices"] = self.choices
        parser.add_argument(*flags, **kwargs) if hasattr(parser, "add_argument") else parser.addoption(*flags, **kwargs)


OPTIONS: dict[str, Option] = {o.dest: o for o in (
    Option(("--pipeline",), {"default": "reinfer", "metavar": "NAME",
                             "help": f"pipeline: {', '.join(PIPELINES)}, or one of OpenVINO's memleaks names "
                                     f"({', '.join(n for n in PIPELINE_NAMES if n not in PIPELINES)})"},
           PIPELINE_NAMES, multi=True),
    Option(("--model",), {"default": "mlp", "metavar": "NAME|PATH", "help": "zoo model name or .onnx path"},
           multi=True),
    Option(("--model-option",), {"action": "append", "type": _key_value, "default": [], "metavar": "KEY=VALUE",
                                 "dest": "model_options", "help": "zoo generator option, e.g. size=64 (repeatable)"}),
    Option(("--mode",), {"default": "default", "metavar": "MODE", "help": f"memory mode: {', '.join(MODES)}"},
           MODES, multi=True),
    # No static choices: entry points add runtimes, so the name is checked when the cell is.
    Option(("--runtime",), {"default": "builtin", "metavar": "NAME",
                            "help": f"runtime: {', '.join(RUNTIMES)} or one an entry point of the group "
                                    f"memgate.runtimes adds (memgate doctor lists them)"},
           multi=True),
    Option(("--allocator",), {"default": "glibc", "metavar": "NAME", "help": f"allocator: {', '.join(ALLOCATORS)}"},
           ALLOCATORS, multi=True),
    Option(("--allocator-path",), {"default": None, "metavar": "PATH", "help": "preload this allocator library"}),
    Option(("--tunable",), {"action": "append", "type": _key_value, "default": [], "metavar": "KEY=VALUE",
                            "dest": "tunables",
                            "help": "allocator tunable, e.g. arena_max=1, jemalloc.dirty_decay_ms=0 "
                                    "(repeatable; a matrix crosses KEY=V1,V2)"},
           multi=True),
    Option(("--target",), {"default": None, "metavar": "FILE.py:NAME|MODULE:NAME",
                           "help": "measure your own callable instead of a pipeline: a function called once per "
                                   "iteration, or a class instantiated once (setup), called per iteration, "
                                   "close()d at the end"}, multi=True),
    Option(("--target-arg",), {"action": "append", "type": _key_value, "default": [], "metavar": "KEY=VALUE",
                               "dest": "target_args",
                               "help": "keyword argument of the target, a Python literal or else a string "
                                       "(repeatable; part of the cell)"}),
    Option(("--python",), {"default": None, "metavar": "PATH",
                           "help": "run the child under this interpreter (your project's venv); a target's "
                                   "child needs nothing of memgate installed there"}),
    Option(("--iterations",), {"type": _positive, "default": 100, "metavar": "N", "help": "measured iterations"}),
    Option(("--warmup",), {"type": _non_negative, "default": None, "metavar": "N",
                           "help": "extra warm-up iterations excluded from the verdict (default: detected)"}),
    Option(("--threads",), {"type": _positive, "default": 2, "metavar": "T", "help": "threads for --pipeline threads"}),
    Option(("--graphs",), {"type": _positive, "default": 3, "metavar": "G", "help": "graphs for multi_graph"}),
    Option(("--timeout",), {"type": _seconds, "default": 600.0, "metavar": "SECONDS", "help": "per cell"}),
    Option(("--inject-leak",), {"type": _size, "default": 0, "metavar": "SIZE",
                                "help": "self-test: leak SIZE (e.g. 64KiB) per iteration in the child"}),
    Option(("--trim",), {"action": "store_true", "help": "malloc_trim(0) after every iteration"}),
    Option(("--python-malloc",), {"action": "store_true",
                                  "help": "PYTHONMALLOC=malloc in the child: Python's small objects go to the "
                                          "allocator under test (its heap counter sees them), at a speed cost"}),
    Option(("--seed",), {"type": int, "default": 0, "metavar": "N", "help": "seed of the sample inputs"}),
    Option(("--no-mmap",), {"action": "store_true", "help": "Core(enable_mmap=False)"}),
    Option(("--cache-dir",), {"default": None, "metavar": "DIR", "help": "Core(cache_dir=DIR)"}),
    Option(("--compile-threads",), {"type": _positive, "default": 1, "metavar": "N",
                                    "help": "Core(compile_threads=N)"}),
    Option(("--static-memory-policy",), {"type": int, "default": 0, "choices": range(5), "metavar": "0-4",
                                         "help": "MemoryConfig(static_memory_policy=...)"}),
    Option(("--atomic-clean-policy",), {"type": int, "default": 0, "choices": range(2), "metavar": "0-1",
                                        "help": "MemoryConfig(atomic_clean_policy=...)"}),
    Option(("--trim-on-release",), {"action": "store_true", "help": "Core(trim_on_release=True)"}),
    Option(("--json",), {"default": None, "metavar": "PATH", "help": "write the results file here"}),
    Option(("--require-allocators",), {"action": "store_true",
                                       "help": "a missing allocator fails the cell instead of skipping it"}),
    Option(("-j", "--jobs"), {"type": _positive, "default": 1, "metavar": "N", "help": "cells run in parallel"}),
    Option(("--workdir",), {"default": None, "metavar": "DIR", "help": "keep models and child files here"}),
    Option(("--baselines",), {"default": None, "metavar": "DIR",
                              "help": "baseline files folder (default: ./baselines, else the checkout's)"}),
    Option(("--strict",), {"action": "store_true", "help": "a cell or metric without a baseline fails too"}),
    Option(("--gate-latency",), {"action": "store_true",
                                 "help": "a slowdown past its tolerance fails too (default: reported as 'slower'; "
                                         "latency on a shared machine follows its load)"}),
    Option(("--out",), {"default": None, "metavar": "DIR", "help": "output folder"}),
    Option(("--models",), {"default": None, "metavar": "LIST",
                           "help": "only these zoo models (comma-separated; a model outside the set is added)"}),
    Option(("--allocators",), {"default": None, "metavar": "LIST",
                               "help": f"allocators, comma-separated (default: every installed one of "
                                       f"{', '.join(ALLOCATORS)})"}),
    Option(("--profile",), {"default": "default", "metavar": "LIST",
                            "help": "tunables profiles, comma-separated: default, arena1, trim, or all"}),
    Option(("--project",), {"default": None, "metavar": "PATH",
                            "help": "the project whose pyproject.toml [tool.memgate] is the gating set and names "
                                    "the baselines folder (default: the working folder's, when it has one)"}),
    Option(("--full",), {"action": "store_true", "help": "the nightly set: thousands of iterations, larger models"}),
    Option(("--shard",), {"type": _shard, "default": None, "metavar": "K/N",
                          "help": "run only shard K of N: a deterministic split of the cells balanced by expected "
                                  "cost, the same on every machine given the same cell list"}),
    Option(("--repeat",), {"type": _positive, "default": 1, "metavar": "N",
                           "help": "run every cell N times (records the spread a baseline's tolerance needs)"}),
    Option(("--blas-kernels",), {"default": "", "metavar": "LIST",
                                 "help": "when recording: run repeat i under OpenBLAS kernel i mod len(LIST) "
                                         "(OPENBLAS_CORETYPE, e.g. SkylakeX,Haswell,Sandybridge, or auto: those of "
                                         "them this CPU runs), so the spread, and the tolerance, is measured "
                                         "across kernels"}),
)}

CELL = ("target", "target_args", "python", "pipeline", "model", "model_options", "mode", "runtime", "allocator",
        "allocator_path", "tunables", "iterations", "warmup", "threads", "graphs", "timeout", "inject_leak", "trim",
        "python_malloc", "seed")
CORE = ("no_mmap", "cache_dir", "compile_threads", "static_memory_policy", "atomic_clean_policy", "trim_on_release")
OUTPUT = ("json", "require_allocators", "workdir")
GATE = ("project", "models", "allocators", "profile", "full", "repeat", "shard", "blas_kernels", "baselines",
        "strict", "gate_latency", "out", "jobs", "workdir")


def add_options(parser: argparse.ArgumentParser, names: Sequence[str], *, multi: bool = False,
                title: str | None = None) -> None:
    target: Any = parser.add_argument_group(title) if title else parser
    for name in names:
        OPTIONS[name].add_to(target, multi=multi)


def core_from_args(ns: argparse.Namespace) -> CoreOptions:
    return CoreOptions(enable_mmap=not ns.no_mmap, cache_dir=ns.cache_dir, compile_threads=ns.compile_threads,
                       atomic_clean_policy=ns.atomic_clean_policy, static_memory_policy=ns.static_memory_policy,
                       trim_on_release=ns.trim_on_release)


def spec_from_args(ns: argparse.Namespace, **overrides: Any) -> CellSpec:
    """One CellSpec from parsed cell flags; raises SpecError or AllocatorError for bad combinations."""
    values = dict(
        pipeline=ns.pipeline, model=ns.model, model_options=tuple(ns.model_options), mode=ns.mode,
        runtime=ns.runtime, allocator=ns.allocator, allocator_path=ns.allocator_path,
        tunables=tuple(ns.tunables), iterations=ns.iterations, warmup=ns.warmup, threads=ns.threads,
        graphs=ns.graphs, timeout=ns.timeout, inject_leak_bytes=ns.inject_leak, trim=ns.trim, seed=ns.seed,
        core=core_from_args(ns), target=getattr(ns, "target", None) or "",
        target_args=tuple(getattr(ns, "target_args", ()) or ()), python=getattr(ns, "python", None) or "",
        python_malloc=getattr(ns, "python_malloc", False),
    )
    values.update(overrides)
    return CellSpec(**values)


def split_list(text: str, choices: Sequence[str] = (), what: str = "value") -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if choices and items == ["all"]:
        return list(choices)
    bad = [t for t in items if choices and t not in choices]
    if bad or not items:
        raise SpecError(f"unknown {what} {', '.join(bad) or '(empty)'}; choose from {', '.join(choices)} or all")
    return items


def tunable_sets(pairs: Sequence[tuple[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """``[("arena_max", "1,4"), ("trim_threshold", "0")]`` -> every combination, one set each."""
    keys = [k for k, _ in pairs]
    values = [v.split(",") for _, v in pairs]
    return [tuple(zip(keys, combo)) for combo in itertools.product(*values)]


def specs_from_matrix_args(ns: argparse.Namespace) -> list[CellSpec]:
    """The cross-product of models, modes, pipelines, runtimes, allocators and tunable values."""
    # With --target the cells are targets x allocators x tunables: pipeline, model, mode and runtime mean nothing.
    crossed = ("target", "allocator") if ns.target else ("model", "mode", "pipeline", "runtime", "allocator")
    axes: dict[str, list[Any]] = {
        name: split_list(getattr(ns, name), runtime_names() if name == "runtime" else OPTIONS[name].choices,
                         name.replace("_", " "))
        for name in crossed
    }
    axes["tunables"] = tunable_sets(ns.tunables)  # type: ignore[assignment]
    base = spec_from_args(ns, pipeline=PIPELINES[0], model="", mode=MODES[0], runtime=RUNTIMES[0],
                          allocator=ALLOCATORS[0], tunables=(), target="")
    names = list(axes)
    return [base.replace(**dict(zip(names, combo))) for combo in itertools.product(*axes.values())]


def check(spec: CellSpec, validate: Callable[[CellSpec], None] | None = None) -> None:
    """Problems a user can fix before anything runs; raises with a message for exit code 2."""
    from .allocators import route_tunables
    from .models import check_model

    if spec.python and not shutil.which(spec.python):
        raise SpecError(f"--python {spec.python}: no such interpreter (not a file, not on PATH)")
    if spec.target:  # the target itself is checked by the child: one that cannot be imported fails its cell
        _check_allocator(spec)
        route_tunables(spec.allocator, spec.tunables)
        if validate is not None:
            validate(spec)
        return
    if spec.pipeline not in PIPELINE_NAMES:
        raise SpecError(f"unknown pipeline {spec.pipeline!r}; choose from {', '.join(PIPELINE_NAMES)}")
    for name, value, choices in (("mode", spec.mode, MODES), ("runtime", spec.runtime, runtime_names())):
        if value not in choices:
            raise SpecError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
    _check_allocator(spec)
    if spec.core.static_memory_policy and spec.mode != "arena" and spec.runtime == "builtin":
        raise SpecError(f"--static-memory-policy {spec.core.static_memory_policy} plans memory in an arena: "
                        f"use --mode arena")
    route_tunables(spec.allocator, spec.tunables)
    check_model(spec.model)
    if validate is not None:
        validate(spec)


def _check_allocator(spec: CellSpec) -> None:
    if spec.allocator not in ALLOCATORS:
        raise SpecError(f"unknown allocator {spec.allocator!r}; choose from {', '.join(ALLOCATORS)}")
    if spec.allocator_path is not None:
        import os

        if not os.path.exists(spec.allocator_path):
            raise SpecError(f"--allocator-path {spec.allocator_path} does not exist")
        if spec.allocator == "glibc":
            raise SpecError("--allocator-path needs --allocator jemalloc, tcmalloc or mimalloc "
                            "(glibc is never preloaded)")
