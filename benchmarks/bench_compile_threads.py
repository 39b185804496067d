"""Compile time and compile VmHWM against compile_threads, each in a fresh process.

    python benchmarks/bench_compile_threads.py --models u2net light:vgg19 --threads 1 2 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from fresh import mib, publish_table, run_fresh, save_model

CHILD = """
import runtime as rt
base = status()
reset_peak()
t = time.perf_counter()
compiled = rt.Core(compile_threads={threads}).compile_model({path!r})
seconds = time.perf_counter() - t
s = status()
emit(seconds=seconds, hwm=s["VmHWM"], base_rss=base["VmRSS"], weights=compiled.memory_stats()["weights_bytes"])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["u2net", "light:vgg19", "light:densenet121"])
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2, 4])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "memgate-bench-models"
    rows = []
    for name in args.models:
        path = save_model(name, folder)
        for n in args.threads:
            runs = [run_fresh(CHILD.format(threads=n, path=str(path))) for _ in range(args.repeat)]
            secs = statistics.median(r["seconds"] for r in runs)
            hwm = statistics.median(r["hwm"] for r in runs)
            peak = statistics.median(r["hwm"] - r["base_rss"] for r in runs)
            rows.append([name, n, f"{secs:.3f}", mib(hwm), mib(peak), mib(runs[0]["weights"])])
            print(rows[-1], flush=True)
    publish_table(["model", "compile_threads", "compile s (median)", "VmHWM MiB", "compile peak +MiB",
                   "weights MiB"], rows, args.out)


if __name__ == "__main__":
    main()
