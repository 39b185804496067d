"""Entry of a target cell's child: ``python stress_tests/child/target.py <job.json> <result.json>``.

Runs under any CPython 3.10+, with or without memgate installed: it imports only the standard
library and, as the private package ``_memgate_child``, the harness's stdlib-only leaf modules
from their files (see ``stress_tests/child/__init__.py``).
"""

import importlib
import os
import sys
import types

PRIVATE_PACKAGE = "_memgate_child"  # the same as stress_tests.child.PRIVATE_PACKAGE (not importable here)


def _bootstrap() -> types.ModuleType:
    room = os.path.dirname(os.path.abspath(__file__))
    # Python put this folder first on sys.path: off it goes, or our module names would shadow the target's.
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == room:
        del sys.path[0]
    harness = os.path.dirname(room)
    package = types.ModuleType(PRIVATE_PACKAGE, "memgate's child-side modules, loaded by file path")
    # A package object of our own over the folder: stress_tests/__init__.py (it looks for runtime) never runs.
    package.__path__ = [harness]
    sys.modules[PRIVATE_PACKAGE] = package
    return importlib.import_module(PRIVATE_PACKAGE + ".child.run")


if __name__ == "__main__":
    raise SystemExit(_bootstrap().main(sys.argv[1:]))
