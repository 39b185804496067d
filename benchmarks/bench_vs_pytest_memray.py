"""memgate's memleak marker next to pytest-memray's limit_leaks: what each catches, and what a marked test costs.

    python -m venv --system-site-packages /tmp/memray-venv && /tmp/memray-venv/bin/pip install pytest-memray
    python benchmarks/bench_vs_pytest_memray.py --python /tmp/memray-venv/bin/python --repeat 3

pytest-memray is a measurement subject here, never a dependency: it is installed in a venv of its
own that sees this interpreter's packages (``--system-site-packages``). Three tests, each written
once per tool: one keeps a 64 KiB bytearray per call (Python heap), one mallocs 64 KiB through
ctypes and never frees it (native), one allocates and frees (clean). Each tool's session runs
alone (the other plugin disabled); the cost per marked test is the session's median wall time
minus that of the same tests unmarked, divided by the number of tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODIES = {
    "keeps_bytearray": "KEPT.append(bytearray(b'x' * 65536))",
    "mallocs": "ctypes.memset(_libc.malloc(65536), 1, 65536)",
    "clean": "data = b'y' * 65536\n    del data",
}
HEADER = """import ctypes
import pytest

KEPT = []
_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
"""


def test_file(marker: str) -> str:
    tests = [f"{marker}\ndef test_{name}():\n    {body}\n" if marker else f"def test_{name}():\n    {body}\n"
             for name, body in BODIES.items()]
    return HEADER + "\n\n" + "\n\n".join(tests)


SESSIONS = {
    "unmarked": ("", ["-p", "no:memray"]),
    "pytest-memray": ('@pytest.mark.limit_leaks("1 KB")', ["--memray", "-p", "no:memgate"]),
    "pytest-memray --native": ('@pytest.mark.limit_leaks("1 KB")', ["--memray", "--native", "-p", "no:memgate"]),
    "memgate": ('@pytest.mark.memleak(iterations={n}, max_growth_per_iter="1 KiB")', ["-p", "no:memray"]),
}


def run(python: str, where: Path, session: str, iterations: int) -> tuple[float, float, dict[str, str]]:
    """(wall seconds, CPU seconds, test -> passed|failed) of one pytest session over that tool's file."""
    marker, flags = SESSIONS[session]
    folder = where / session.replace(" ", "_").replace("-", "_")
    folder.mkdir(exist_ok=True)
    (folder / "test_cases.py").write_text(test_file(marker.format(n=iterations)))
    junit = folder / "junit.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    # Bytecode caches on, as on a user's machine: without them every process (memgate's child pytest too)
    # recompiles and assertion-rewrites every module it imports.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0, cpu0 = time.perf_counter(), _children_cpu()
    subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, f"--junitxml={junit}",
                    "test_cases.py"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[case.get("name", "").removeprefix("test_")] = "failed" if failed else "passed"
    return seconds, cpu, outcomes


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children and theirs: steadier than wall time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="an interpreter with pytest-memray installed")
    parser.add_argument("--repeat", type=int, default=3, help="sessions per tool; the median time is kept")
    parser.add_argument("--iterations", type=int, default=100, help="memgate's iterations per marked test")
    args = parser.parse_args(argv)
    check = subprocess.run([args.python, "-c", "import pytest_memray"], capture_output=True)
    if check.returncode:
        raise SystemExit(f"{args.python} has no pytest_memray: install it in a venv of its own (see --help)")
    times: dict[str, list[float]] = {s: [] for s in SESSIONS}
    cpus: dict[str, list[float]] = {s: [] for s in SESSIONS}
    outcomes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="memgate-vs-memray-") as tmp:
        for _ in range(args.repeat):
            for session in SESSIONS:  # interleaved: machine load drifts over the run, not per tool
                seconds, cpu, outcomes[session] = run(args.python, Path(tmp), session, args.iterations)
                times[session].append(seconds)
                cpus[session].append(cpu)
    base, base_cpu = statistics.median(times["unmarked"]), statistics.median(cpus["unmarked"])
    expected = {"keeps_bytearray": "failed", "mallocs": "failed", "clean": "passed"}
    print("| session | " + " | ".join(f"{n} ({'leaks' if expected[n] == 'failed' else 'clean'})"
                                       for n in BODIES) + " | median session (wall, CPU) | cost per marked test "
                                                          "(wall, CPU) |")
    print("|---|" + "---|" * (len(BODIES) + 2))
    for session in SESSIONS:
        seen = [("caught" if outcomes[session][n] == "failed" else "missed") if expected[n] == "failed"
                else ("false alarm" if outcomes[session][n] == "failed" else "passes") for n in BODIES]
        median, cpu = statistics.median(times[session]), statistics.median(cpus[session])
        cost = "-" if session == "unmarked" else (f"{(median - base) / len(BODIES):.2f} s, "
                                                  f"{(cpu - base_cpu) / len(BODIES):.2f} s")
        print(f"| {session} | " + " | ".join(seen) + f" | {median:.2f} s, {cpu:.2f} s | {cost} |")
    print(f"\n{args.repeat} sessions per tool; memgate {args.iterations} iterations per test; "
          f"pytest-memray limit_leaks('1 KB') with --memray")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
