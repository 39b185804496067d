"""How close the gate's clean runs come to failing: leave-one-run-out over a repeated ``memgate check``.

    memgate check --profile default,arena1 --repeat 9 --out rec9
    python benchmarks/bench_gate_noise.py rec9/results.json

For every run k of N (a cell's k-th occurrence in the results: repeats are whole passes), baselines
are recorded from the other N-1 runs into a temporary folder with ``baseline update`` (the committed
rule: median, spread, floors, file-backed slack) and run k is compared against them.  A clean
machine's run judged against its own other runs should never be a regression: the table gives the
false regressions and, per metric kind, how close the worst figure came, as (current - baseline) /
tolerance (1.0 is the gate).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stress_tests.baselines import compare, update  # noqa: E402
from stress_tests.metrics import entry_key, kind  # noqa: E402
from stress_tests.results import Results, read_results  # noqa: E402


def split_runs(res: Results) -> list[Results]:
    """The results of each repeat: a cell's k-th occurrence belongs to run k."""
    seen: dict[tuple, int] = defaultdict(int)
    runs: dict[int, list] = defaultdict(list)
    for c in res.cells:
        key = (entry_key(c.spec), c.spec.allocator, c.spec.tunables, c.spec.trim)
        runs[seen[key]].append(c)
        seen[key] += 1
    return [Results(runs[k], res.fingerprint, res.command, res.created, res.memgate) for k in sorted(runs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="results.json of a check run with --repeat N (N >= 3)")
    args = ap.parse_args()
    runs = split_runs(read_results(args.results))
    if len(runs) < 3:
        sys.exit(f"{args.results}: {len(runs)} run(s) per cell; record with --repeat 3 or more")
    figures, false = 0, []
    closest: dict[str, float] = defaultdict(lambda: float("-inf"))
    for k, held in enumerate(runs):
        with tempfile.TemporaryDirectory() as folder:
            update([r for i, r in enumerate(runs) if i != k], folder)
            for row in compare(held, folder).rows:
                if row["baseline"] is None or row["current"] is None or not row["tolerance"]:
                    continue
                figures += 1
                closeness = (row["current"] - row["baseline"]) / row["tolerance"]
                closest[kind(row["metric"])] = max(closest[kind(row["metric"])], closeness)
                if row["verdict"] == "regression":
                    false.append(f"run {k}: {row['cell']} {row['metric']} {row['current']:.0f} vs "
                                 f"{row['baseline']:.0f} ± {row['tolerance']:.0f}")
    print(f"{len(runs)} runs, {figures} figures judged, {len(false)} false regression(s)")
    print("\n| metric | closest to the gate (1.0 fails) |\n|---|---|")
    for name in sorted(closest):
        print(f"| {name} | {closest[name]:.2f} |")
    for line in false:
        print(line)


if __name__ == "__main__":
    main()
