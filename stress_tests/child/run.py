"""A target cell's child: import the user's callable, measure its setup, its calls and its close.

Stages: ``import`` (the target's module), ``setup`` (a class target's instance), ``iter1 call``
(the first call), ``close`` (a class target's ``close()``, when defined). ``--target-arg KEY=VALUE``
values are Python literals where they parse as one (``size=16384`` is an int, ``name=abc`` the
string ``"abc"``, ``name="16"`` the string ``"16"``).

Anything the user's code does wrong (it cannot be imported, names nothing callable, raises,
exits) is the cell's ``failed`` result with the user's traceback in ``stderr_tail``; a crash of
the process (a segfault in native code) is seen by the parent, which rebuilds the result from
the journal.
"""

from __future__ import annotations

import ast
import functools
import gc
import importlib
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..journal import Journal, journal_path
from ..spec import CellResult, CellSpec, target_kind, write_json_atomic
from ..worker import settled_end
from . import OPTIONAL_HELPERS
from .loop import TargetFailed, begin, failed, foreign_modules, iterate, settler, stage

_PRIVATE = __name__.split(".", 1)[0]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python stress_tests/child/target.py <job.json> <result.json>", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    spec = CellSpec.from_dict(job["spec"])
    result_path = Path(argv[1])
    journal = Journal(journal_path(result_path))
    try:
        result = run(spec, journal)
    except Exception as e:  # noqa: BLE001  (a harness failure is still a result the parent can show)
        result = CellResult(spec, "failed", reason=f"memgate's child failed: {type(e).__name__}: {e}",
                            stderr_tail=traceback.format_exc(limit=8))
    journal.close()
    write_json_atomic(result_path, result.to_dict())
    return 0


def helpers() -> tuple[dict[str, Any], dict[str, str]]:
    """The optional stdlib-only helper modules present in this checkout (the seam for heap counters),
    and those that failed to load with why: a broken helper costs the cell its figures, never its run."""
    found, broken = {}, {}
    for name in OPTIONAL_HELPERS:
        if (Path(__file__).resolve().parent.parent / f"{name}.py").is_file():
            try:
                found[name] = importlib.import_module(f"{_PRIVATE}.{name}")
            except Exception as e:  # noqa: BLE001
                broken[name] = f"{type(e).__name__}: {e}"
    return found, broken


def run(spec: CellSpec, journal: Journal) -> CellResult:
    loaded, broken = helpers()
    extra = {"foreign_modules": foreign_modules(_PRIVATE), "helpers": sorted(loaded), "helpers_failed": broken}
    probe, applied, info, fields, counter = begin(spec, journal, extra)
    result = CellResult(spec, "ok", applied=applied, probe=info)
    if not applied.verified:
        result.status, result.reason = "failed", applied.notes[0]
        return result
    settle = settler(spec, info, applied)
    try:
        memory, module = stage(probe, "import", functools.partial(import_target, spec.target), journal,
                               f"importing {spec.target}", settle, counter)
        result.stages.append(memory)
        call, close = bind(spec, module, probe, journal, result, settle, counter)
        gc.collect()
        gc.freeze()  # the target's import-time objects: out of the per-iteration collection's way
        iterate(spec, probe, fields, journal, result, call, settle, counter)
        settled_end(probe, settle, result)
        if close is not None:
            memory, _ = stage(probe, "close", close, journal, "close()", settle, counter)
            result.stages.append(memory)
    except TargetFailed as e:
        failed(result, e)
    probe.close()
    return result


def import_target(target: str) -> Any:
    """The module a target names, imported as ``python FILE.py`` or ``python -m`` would find it."""
    where = target.rpartition(":")[0]
    if target_kind(target) == "file":
        path = Path(where).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {where} (from {os.getcwd()})")
        sys.path.insert(0, str(path.parent))  # its siblings import as they would when run as a script
        name = path.stem if path.stem.isidentifier() else "memgate_target"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{where} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except ImportError as e:
            if "relative import" in str(e):  # a module of a package, loaded alone by its path
                raise ImportError(f"{e}: {where} belongs to a package; name it as package.module:NAME") from e
            raise
        return module
    sys.path.insert(0, os.getcwd())  # as ``python -m`` does: the project's own packages first
    return importlib.import_module(where)


def resolve(target: str, module: Any) -> Any:
    """The object NAME (dotted for an attribute) names in ``module``; TargetFailed if absent or not callable."""
    name = target.rpartition(":")[2]
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            known = sorted(n for n, v in vars(obj).items() if callable(v) and not n.startswith("_"))
            raise TargetFailed(f"{target}: {getattr(obj, '__name__', obj)!s} has no attribute {part!r}; "
                               f"callables it has: {', '.join(known) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TargetFailed(f"{target} is not callable (an object of type {type(obj).__name__}): name a function "
                           f"or a class")
    if inspect.iscoroutinefunction(obj):
        raise TargetFailed(f"{target} is an async function: wrap it in a function that runs it (asyncio.run)")
    return obj


def target_kwargs(spec: CellSpec) -> dict[str, Any]:
    """``--target-arg`` values as Python literals where they parse as one, else as strings."""
    out: dict[str, Any] = {}
    for key, text in spec.target_args:
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def bind(spec: CellSpec, module: Any, probe: Any, journal: Journal, result: CellResult, settle: Any = None,
         counter: Any = None) -> tuple[Callable[[], Any], Callable[[], Any] | None]:
    """(the per-iteration call, the close or None); a class is instantiated here, in the ``setup`` stage."""
    obj = resolve(spec.target, module)
    kwargs = target_kwargs(spec)
    if not inspect.isclass(obj):
        _check_arguments(spec.target, obj, kwargs)
        return functools.partial(obj, **kwargs), None
    _check_arguments(spec.target, obj, kwargs)
    memory, instance = stage(probe, "setup", lambda: obj(**kwargs), journal, f"{spec.target}(...)", settle, counter)
    result.stages.append(memory)
    if not callable(instance):
        raise TargetFailed(f"{spec.target} is a class without __call__: its instance has nothing to call per "
                           f"iteration")
    close = getattr(instance, "close", None)
    return instance, close if callable(close) else None


def _check_arguments(target: str, obj: Any, kwargs: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature: let the call say what is wrong
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        given = ", ".join(kwargs) or "no arguments"
        raise TargetFailed(f"{target}{signature} cannot be called with {given}: {e}") from None
