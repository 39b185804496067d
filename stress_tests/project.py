"""A project's own gating set: ``[tool.memgate]`` in its ``pyproject.toml``.

``memgate check`` runs it when it finds one (in the working folder, or ``--project PATH``), and
``memgate baseline update`` / ``compare`` use its baselines folder::

    [tool.memgate]
    iterations = 200                    # per target unless the target says otherwise
    allocators = ["glibc", "jemalloc"]  # default: every installed allocator
    profiles = ["default", "arena1"]    # tunables profiles (default, arena1, trim)
    baselines = "memgate-baselines"     # relative to the pyproject.toml; default "baselines"
    python = ".venv/bin/python"         # the children's interpreter; default: memgate's own
    # warmup = 20, timeout = 300 (seconds per cell) also apply to every target

    [[tool.memgate.targets]]
    target = "src/app/cache.py:Cache"   # FILE.py:NAME (relative to the project) or package.module:NAME
    args = { size = 1024, name = "lru" }
    iterations = 500                    # and warmup, timeout: this target's own

``targets`` may also be a list of plain strings. Module targets import with the project's folder
first on ``sys.path`` (the children run there), as ``python -m`` would have it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import CellSpec, SpecError, target_args_from, target_kind

PYPROJECT = "pyproject.toml"
_TOP_KEYS = {"targets", "iterations", "warmup", "timeout", "allocators", "profiles", "baselines", "python"}
_TARGET_KEYS = {"target", "args", "iterations", "warmup", "timeout"}


class ProjectError(ValueError):
    """A ``[tool.memgate]`` table that cannot be used: the message names the file and the key."""


@dataclass(frozen=True)
class Target:
    """One target of the set, with its arguments (as ``--target-arg`` text) and its own settings."""

    target: str
    args: tuple[tuple[str, str], ...] = ()
    iterations: int | None = None
    warmup: int | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Project:
    """The gating set of one project."""

    file: Path
    targets: tuple[Target, ...]
    iterations: int = 100
    warmup: int | None = None
    timeout: float = 600.0
    allocators: tuple[str, ...] | None = None  # None: every installed one
    profiles: tuple[str, ...] = ("default",)
    baselines: Path = Path("baselines")
    python: str = ""

    @property
    def root(self) -> Path:
        return self.file.parent

    def specs(self, allocators: Sequence[str], profiles: Sequence[str], repeat: int = 1) -> list[CellSpec]:
        """Targets x allocators x profiles (x repeats), each a target cell with the profile's settings."""
        from .profiles import defined, settings

        once = []
        for t, allocator, profile in itertools.product(self.targets, allocators, profiles):
            if not defined(profile, allocator):  # a profile the allocator has no knob for
                continue
            tunables, trim = settings(profile, allocator)
            once.append(CellSpec(target=t.target, target_args=t.args, allocator=allocator, tunables=tunables,
                                 trim=trim, iterations=t.iterations or self.iterations,
                                 warmup=t.warmup if t.warmup is not None else self.warmup,
                                 timeout=t.timeout or self.timeout, python=self.python))
        return once * repeat


def find(where: str | Path | None = None) -> Project | None:
    """The project at ``where`` (a pyproject.toml or its folder; default the working folder), or None.

    None when there is no pyproject.toml or it has no ``[tool.memgate]``; an explicit ``where`` that
    does not exist, or a table that does not fit, raises ProjectError.
    """
    path = Path(where) if where is not None else Path.cwd()
    file = path / PYPROJECT if path.is_dir() else path
    if not file.is_file():
        if where is not None:
            raise ProjectError(f"--project {where}: no {PYPROJECT} there")
        return None
    table = _read(file).get("tool", {}).get("memgate")
    if table is None:
        if where is not None:
            raise ProjectError(f"{file} has no [tool.memgate] table (see memgate check --help)")
        return None
    return parse(table, file)


def _read(file: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ProjectError(f"reading {file} needs Python 3.11+ or the tomli package") from None
    try:
        with open(file, "rb") as f:
            return dict(tomllib.load(f))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProjectError(f"{file}: {e}") from None


def parse(table: Mapping[str, Any], file: Path) -> Project:
    """Check and convert a ``[tool.memgate]`` table read from ``file``."""
    where = f"{file} [tool.memgate]"
    _known(table, _TOP_KEYS, where)
    raw = table.get("targets")
    if not isinstance(raw, list) or not raw:
        raise ProjectError(f"{where}: targets must be a non-empty list of targets (strings or tables)")
    targets = tuple(_target(t, file, f"{where} targets[{i}]") for i, t in enumerate(raw))
    from .allocators import ALLOCATORS
    from .profiles import PROFILE_NAMES

    allocators = _names(table.get("allocators"), ALLOCATORS, f"{where} allocators")
    profiles = _names(table.get("profiles", ["default"]), PROFILE_NAMES, f"{where} profiles")
    python = str(table.get("python", ""))
    if python and ("/" in python or python.startswith(".")):
        python = str((file.parent / python).resolve())
    return Project(
        file=file.resolve(), targets=targets,
        iterations=_int(table.get("iterations", 100), f"{where} iterations", 1),
        warmup=None if table.get("warmup") is None else _int(table["warmup"], f"{where} warmup", 0),
        timeout=_seconds(table.get("timeout", 600.0), f"{where} timeout"),
        allocators=allocators, profiles=profiles or ("default",),
        baselines=(file.parent / str(table.get("baselines", "baselines"))).resolve(), python=python,
    )


def _target(raw: Any, file: Path, where: str) -> Target:
    if isinstance(raw, str):
        raw = {"target": raw}
    if not isinstance(raw, Mapping):
        raise ProjectError(f"{where}: expected a string or a table with target = \"FILE.py:NAME\", got {raw!r}")
    _known(raw, _TARGET_KEYS, where)
    text = raw.get("target")
    if not isinstance(text, str):
        raise ProjectError(f"{where}: target must be a string such as \"src/app/cache.py:Cache\"")
    if target_kind(text) == "file":  # relative to the project, wherever memgate is run from
        path, _, name = text.rpartition(":")
        text = f"{(file.parent / path).resolve()}:{name}"
    args = raw.get("args", {})
    if not isinstance(args, Mapping):
        raise ProjectError(f"{where}: args must be a table of keyword arguments, got {args!r}")
    pairs = target_args_from(args)  # TOML values as the Python literals --target-arg takes
    try:
        CellSpec(target=text, target_args=pairs)
    except SpecError as e:
        raise ProjectError(f"{where}: {e}") from None
    return Target(text, pairs,
                  None if raw.get("iterations") is None else _int(raw["iterations"], f"{where} iterations", 1),
                  None if raw.get("warmup") is None else _int(raw["warmup"], f"{where} warmup", 0),
                  None if raw.get("timeout") is None else _seconds(raw["timeout"], f"{where} timeout"))


def _known(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ProjectError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _names(value: Any, choices: Sequence[str], where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProjectError(f"{where}: expected a list of names from {', '.join(choices)}")
    bad = [v for v in value if v not in choices]
    if bad:
        raise ProjectError(f"{where}: unknown {', '.join(bad)}; choose from {', '.join(choices)}")
    return tuple(value)


def _int(value: Any, where: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ProjectError(f"{where}: expected a whole number of at least {low}, got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ProjectError(f"{where}: expected a positive number of seconds, got {value!r}")
    return float(value)
