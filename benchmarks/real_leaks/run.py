"""Documented memory leaks of released packages, measured by memgate: the leaking and the fixed release.

    python benchmarks/real_leaks/run.py                 # every case, 100 iterations each
    python benchmarks/real_leaks/run.py --only ujson --iterations 200 --venvs ~/.cache/memgate-leaks

For each case and version: a venv of its own (``--without-pip``; the package installed into it
by this interpreter's pip from a PyPI wheel), then ``memgate run --target targets.py:CLASS
--python VENV/bin/python``, and a Markdown table: package, version, what leaks, the growth per
iteration memgate measured (RssAnon, with its interval) and the verdict. memgate is not
installed in those venvs: the target child needs only the standard library.

Needs the network (PyPI) the first time; venvs are kept in ``--venvs`` and reused.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass(frozen=True)
class Case:
    package: str
    leaking: str
    fixed: str
    target: str  # a class in targets.py
    what: str
    source: str  # the issue thread naming the leaking and the fixed release
    python: str = "3.11"  # the wheels of some releases exist for older interpreters only


CASES = (
    Case("msgspec", "0.14.1", "0.14.2", "MsgspecTupleDecode",
         "msgpack-decoding a Struct with a 17-item tuple field, 1000 decodes per iteration",
         "https://github.com/msgspec/msgspec/issues/379"),
    Case("frozendict", "2.3.0", "2.3.2", "FrozendictHash",
         "hash() of a new 100-item frozendict, 100 per iteration", "https://github.com/Marco-Sulla/python-frozendict/issues/55",
         "3.10"),
    Case("frozendict", "2.3.2", "2.3.3", "FrozendictRepr",
         "repr() of a 100-item frozendict, 100 per iteration", "https://github.com/Marco-Sulla/python-frozendict/issues/59",
         "3.10"),
    Case("ujson", "5.12.0", "5.12.1", "UjsonDumpWriteFails",
         "dump() of 64 KiB to a file whose write() raises, 4 per iteration",
         "https://github.com/datahub-project/datahub/pull/17453 (CVE-2026-44660)"),
)


def interpreter(version: str) -> str:
    """A CPython of ``version``: this one, pyenv's, or one on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = [*sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))),
                  shutil.which(f"python{version}")]
    for python in filter(None, candidates):
        if subprocess.run([python, "-c", "import venv"], capture_output=True).returncode == 0:
            return python
    raise SystemExit(f"no CPython {version} found (pyenv or PATH): needed for the wheels of some releases")


def venv(root: Path, case: Case, version: str) -> str:
    """A venv holding ``case.package==version`` only (made once, then reused)."""
    where = root / f"py{case.python}-{case.package}-{version}"
    python = where / "bin" / "python"
    if not python.exists():
        subprocess.run([interpreter(case.python), "-m", "venv", "--without-pip", str(where)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                        "--only-binary=:all:", f"{case.package}=={version}"], check=True)
    return str(python)


def measure(case: Case, version: str, python: str, iterations: int, out: Path) -> dict:
    """One memgate run of the case's target under the venv's interpreter: its cell as a dict."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    json_path = out / f"{case.target}-{version}.json"
    subprocess.run([sys.executable, "-m", "stress_tests.cli", "run", "--target", f"{HERE / 'targets.py'}:{case.target}",
                    "--python", python, "--iterations", str(iterations), "--json", str(json_path)],
                   env=env, cwd=str(out), stdout=subprocess.DEVNULL, check=False)
    return dict(json.loads(json_path.read_text())["cells"][0])


def kib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024:+.1f} KiB"


def row(case: Case, version: str, cell: dict) -> list[str]:
    v = cell.get("verdicts", {}).get("RssAnon") or {}
    growth = kib(v.get("slope"))
    if v.get("slope_low") is not None:
        growth += f" ({kib(v['slope_low'])} to {kib(v['slope_high'])})"
    verdict = cell.get("verdict") or f"{cell['status']}: {cell['reason']}"
    role = "leaking" if version == case.leaking else "fixed"
    return [case.package, f"{version} ({role})", case.what, growth, verdict]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--only", default="", help="comma-separated package names")
    parser.add_argument("--venvs", default=None, help="keep the venvs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    only = {p for p in args.only.split(",") if p}
    with tempfile.TemporaryDirectory(prefix="memgate-real-leaks-") as tmp:
        root = Path(args.venvs).expanduser() if args.venvs else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        out = Path(tmp) / "results"
        out.mkdir()
        rows, wrong = [], []
        for case in CASES:
            if only and case.package not in only:
                continue
            for version in (case.leaking, case.fixed):
                cell = measure(case, version, venv(root, case, version), args.iterations, out)
                rows.append(row(case, version, cell))
                expected = "leak" if version == case.leaking else "no-leak"
                if cell.get("verdict") != expected:
                    wrong.append(f"{case.package} {version}: {cell.get('verdict') or cell['status']}, "
                                 f"expected {expected}")
        header = ["package", "version", "what leaks (per iteration)", "growth per iteration (RssAnon, interval)",
                  "verdict"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print(f"\n{args.iterations} iterations per cell; sources: " +
              "; ".join(f"{c.package} {c.source}" for c in CASES if not only or c.package in only))
        for line in wrong:
            print(f"UNEXPECTED: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
