"""The runtimes under test, one adapter module each, plus any found through an entry point.

Built in: ``builtin`` (memgate's runtime), ``onnxruntime``, ``reference`` (onnx's
ReferenceEvaluator) and ``openvino``. A third-party package adds its runtime with an entry
point in the group ``memgate.runtimes`` whose value is an ``Adapter`` subclass::

    [project.entry-points."memgate.runtimes"]
    myrt = "myrt_memgate:MyAdapter"

Nothing is imported until a runtime is asked for: ``adapter_class`` imports the adapter's
module (cheap: adapters import their runtime in ``__init__``), ``get_adapter`` constructs it.
A built-in name cannot be taken by an entry point (``problems`` says so).
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import dataclass
from importlib import metadata

from .base import FEATURES, MODES, Adapter, AdapterError

__all__ = ["Adapter", "AdapterError", "MODES", "FEATURES", "RUNTIMES", "ENTRY_POINT_GROUP", "adapter_class",
           "get_adapter", "runtime_names", "discover", "RuntimeInfo"]

ENTRY_POINT_GROUP = "memgate.runtimes"
BUILTIN: dict[str, str] = {
    "builtin": "stress_tests.adapters.builtin:Builtin",
    "onnxruntime": "stress_tests.adapters.onnxruntime:OnnxRuntime",
    "reference": "stress_tests.adapters.reference:Reference",
    "openvino": "stress_tests.adapters.openvino:OpenVINO",
}
#: The built-in runtimes; ``runtime_names()`` adds the ones entry points bring.
RUNTIMES = tuple(BUILTIN)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return dict(_scan(tuple(sys.path)))


@functools.lru_cache(maxsize=8)
def _scan(path: tuple[str, ...]) -> tuple[tuple[str, metadata.EntryPoint], ...]:
    """The group's entry points for this ``sys.path`` (its key: a scan costs ~20 ms, and a matrix checks
    every cell's runtime; a package installed into a folder already on the path shows after a restart)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # the first on sys.path wins, as for any import
    return tuple(found.items())


def runtime_names() -> tuple[str, ...]:
    """Every runtime ``--runtime`` accepts: the built-in ones, then the entry points' (sorted)."""
    return RUNTIMES + tuple(sorted(n for n in _entry_points() if n not in BUILTIN))


def _load(target: str) -> object:
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class of a runtime, without constructing it (the runtime itself is not imported)."""
    try:
        if name in BUILTIN:
            cls = _load(BUILTIN[name])
            where = BUILTIN[name]
        else:
            eps = _entry_points()
            if name not in eps:
                raise AdapterError(f"unknown runtime {name!r}; choose one of {list(runtime_names())} "
                                   f"(third-party runtimes register in the entry point group {ENTRY_POINT_GROUP!r})")
            where = f"entry point {name} = {eps[name].value}"
            cls = eps[name].load()
    except AdapterError:
        raise
    except Exception as e:  # noqa: BLE001  (a broken adapter module may raise anything on import)
        raise AdapterError(f"runtime {name!r} cannot be loaded: {type(e).__name__}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterError(f"runtime {name!r}: {where} is not a stress_tests.adapters.Adapter subclass")
    return cls


def get_adapter(name: str) -> Adapter:
    """An adapter by runtime name; its runtime is imported here, not before."""
    return adapter_class(name)()


@dataclass(frozen=True)
class RuntimeInfo:
    """One row of ``memgate doctor``'s runtimes table."""

    name: str
    source: str  # "built-in" or "entry point <value>"
    version: str | None
    error: str = ""


def discover() -> tuple[list[RuntimeInfo], list[str]]:
    """Every runtime with its version (constructing each adapter imports its runtime), and problems."""
    eps = _entry_points()
    problems = [f"entry point {ENTRY_POINT_GROUP}:{n} = {eps[n].value} is ignored: {n!r} is a built-in runtime"
                for n in sorted(eps) if n in BUILTIN]
    rows = []
    for name in runtime_names():
        source = "built-in" if name in BUILTIN else f"entry point {eps[name].value}"
        try:
            rows.append(RuntimeInfo(name, source, get_adapter(name).version()))
        except Exception as e:  # noqa: BLE001  (a broken third-party adapter is a row, not a crash)
            rows.append(RuntimeInfo(name, source, None, f"{type(e).__name__}: {e}"))
    return rows, problems
