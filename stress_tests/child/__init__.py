"""The child's room: what a target cell's child runs, standard library only, loaded by file path.

A target cell's child is ``python <room>/target.py <job.json> <result.json>`` under the user's
interpreter (``--python``): Python puts this folder first on ``sys.path`` and ``target.py`` takes
it off again, then loads the harness's stdlib-only leaf modules (spec, journal, probes, verify,
allocators, units, atomic, hunt, worker, this room) as the private package ``_memgate_child``
straight from their files. Nothing memgate ships is importable by its usual name there
(``runtime``, ``stress_tests``, ``tests``, ``benchmarks``), so the target imports its own venv's
packages and only those.

Optional helpers (``OPTIONAL_HELPERS``, such as the live-heap counters of ``heap.py``) are loaded
the same way when their file exists; a helper must import only the standard library.
"""

from __future__ import annotations

from pathlib import Path

ROOM = Path(__file__).resolve().parent
#: The script a target cell's child runs.
TARGET_ENTRY = ROOM / "target.py"
#: The name the harness's folder is loaded under in a target child (never ``stress_tests``).
PRIVATE_PACKAGE = "_memgate_child"
#: Harness modules a target child loads when present (stdlib-only by contract).
OPTIONAL_HELPERS = ("heap",)
