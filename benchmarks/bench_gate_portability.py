"""Does a clean run pass the gate from another install of the same checkout?

The committed baselines are recorded from one install; users run ``memgate check`` from another
(a tox env, a virtualenv with another pip choosing other wheel builds, a CI runner). This script
makes fresh installs of a checkout with different tools, runs ``memgate check`` from each against
a baselines folder, and counts the regressions: every one is a false regression, since the code
did not change.

    python benchmarks/bench_gate_portability.py --installs venv,virtualenv --profiles default --runs 1
    python benchmarks/bench_gate_portability.py --checkout /tmp/old --baselines /tmp/old/baselines
    python benchmarks/bench_gate_portability.py --record-from venv --installs virtualenv --runs 2

``--record-from KIND`` records baselines from that install first (``check --repeat`` then
``baseline update`` into a scratch folder) and checks the other installs against them; without it
the checkout's committed ``baselines/`` are used. Installs download their wheels from the package
index (pip's cache helps); each lives under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("venv", "virtualenv")


def make_install(kind: str, checkout: Path, work: Path) -> Path:
    """A fresh environment of ``kind`` with the checkout installed (editable); returns its python."""
    env_dir = work / f"{kind}-{checkout.name}"
    python = env_dir / "bin" / "python"
    if python.exists():
        return python
    if kind == "venv":
        subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    elif kind == "virtualenv":  # seeds its own pip, setuptools and wheel versions
        subprocess.run([sys.executable, "-m", "virtualenv", "-q", str(env_dir)], check=True)
    else:
        raise SystemExit(f"unknown install kind {kind!r}; choose from {', '.join(KINDS)}")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(checkout)], check=True)
    return python


def check(python: Path, profiles: str, allocators: str, baselines: Path, out: Path, extra: list[str]) -> dict:
    """One ``memgate check`` from ``python``'s install; the comparison it wrote."""
    cmd = [str(python), "-m", "stress_tests.cli", "check", "--profile", profiles, "--baselines", str(baselines),
           "--out", str(out), *extra]
    if allocators:
        cmd += ["--allocators", allocators]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    comparison = out / "comparison.json"
    if not comparison.exists():
        raise SystemExit(f"{' '.join(cmd)} wrote no comparison (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                         f"\n{proc.stderr[-3000:]}")
    data = json.loads(comparison.read_text())
    data["seconds"] = time.monotonic() - t0
    data["exit"] = proc.returncode
    return data


def rows_by_env(comparison: dict) -> dict[str, dict]:
    """Per env key: figures compared, regressions (with the metric names) and the closest figure to its gate."""
    out: dict[str, dict] = {}
    for r in comparison["rows"]:
        e = out.setdefault(r["env_key"], {"figures": 0, "regressions": [], "closest": 0.0})
        if r["baseline"] is None or r["current"] is None or not r["tolerance"]:
            continue
        e["figures"] += 1
        moved = r["current"] - r["baseline"] - (r.get("file_move") or 0.0)
        e["closest"] = max(e["closest"], moved / r["tolerance"])
        if r["verdict"] == "regression":
            e["regressions"].append(f"{r['cell']} {r['metric']}" + (f" ({r['cause']})" if r.get("cause") else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    p.add_argument("--installs", default="venv,virtualenv", help=f"install kinds to check from: {', '.join(KINDS)}")
    p.add_argument("--record-from", default="", help="record baselines from this install kind first")
    p.add_argument("--record-repeat", type=int, default=3)
    p.add_argument("--baselines", type=Path, default=None, help="default: the checkout's baselines/")
    p.add_argument("--profiles", default="default")
    p.add_argument("--allocators", default="")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("/tmp/memgate-portability"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    baselines = args.baselines or args.checkout / "baselines"
    if args.record_from:
        python = make_install(args.record_from, args.checkout, args.work)
        rec = args.work / "recorded"
        check(python, args.profiles, args.allocators, baselines, rec, ["--repeat", str(args.record_repeat)])
        baselines = args.work / "recorded-baselines"
        baselines.mkdir(exist_ok=True)
        subprocess.run([str(python), "-m", "stress_tests.cli", "baseline", "update", str(rec / "results.json"),
                        "--baselines", str(baselines)], check=True, capture_output=True)
    table = []
    for kind in [k for k in args.installs.split(",") if k]:
        python = make_install(kind, args.checkout, args.work)
        for run in range(1, args.runs + 1):
            comparison = check(python, args.profiles, args.allocators, baselines, args.work / f"{kind}-run{run}", [])
            for key, e in sorted(rows_by_env(comparison).items()):
                table.append({"install": kind, "run": run, "env_key": key, "figures": e["figures"],
                              "false_regressions": len(e["regressions"]), "closest": round(e["closest"], 2),
                              "examples": e["regressions"][:3]})
    print(f"baselines: {baselines}; checkout: {args.checkout}")
    print("| install | run | env key | figures | false regressions | closest to its gate | examples |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['install']} | {r['run']} | {r['env_key']} | {r['figures']} | {r['false_regressions']} | "
              f"{r['closest']:.2f} | {'; '.join(r['examples'])} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 1 if any(r["false_regressions"] for r in table) else 0


if __name__ == "__main__":
    raise SystemExit(main())
