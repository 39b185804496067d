"""ailia's memory-mode table, reproduced: per model and mode, peak memory and latency.

Each (model, mode) runs in a fresh process: compile, reset VmHWM, first inference,
then steady inferences. Reported: the process VmHWM, the inference peak above the
RSS after compile, intermediate_bytes and lower_bound_bytes from memory_stats(),
first and steady latency (the best of the steady runs: on a shared machine the minimum is the
figure least disturbed by other load; the median is printed too). One BLAS thread.

    python benchmarks/bench_memory_modes.py                # u2net, u2netp, resnet50, bert
    python benchmarks/bench_memory_modes.py --models u2netp --runs 5 --out table.md
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fresh import mib, publish_table, run_fresh, save_model

CHILD = """
import statistics
import runtime as rt
path, mode, runs = {path!r}, {mode!r}, {runs}
core = rt.Core()
compiled = core.compile_model(path, memory_mode=mode)
feeds = feeds_for(compiled)
req = compiled.create_infer_request()
rt.release_memory()
after_compile = status()
reset_peak()
t = time.perf_counter(); req.infer(feeds); first = time.perf_counter() - t
times = []
for _ in range(runs):
    t = time.perf_counter(); req.infer(feeds); times.append(time.perf_counter() - t)
s = status()
emit(hwm=s["VmHWM"], rss_after_compile=after_compile["VmRSS"], stats=compiled.memory_stats(),
     first=first, steady=min(times), median=statistics.median(times))
"""

MODELS = {"u2net": {}, "u2netp": {}, "resnet50": {}, "bert": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--modes", nargs="*", default=["default", "reduce", "reuse", "arena"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    folder = Path(tempfile.gettempdir()) / "memgate-bench-models"
    rows = []
    for name in args.models:
        path = save_model(name, folder)
        base = None
        for mode in args.modes:
            r = run_fresh(CHILD.format(path=str(path), mode=mode, runs=args.runs))
            s = r["stats"]
            if mode == "default":
                base = r["steady"]
            peak = r["hwm"] - r["rss_after_compile"]
            rows.append([
                name, mode, mib(r["hwm"]), mib(max(peak, 0)), mib(s["intermediate_bytes"]),
                mib(s["lower_bound_bytes"]), f"{s['intermediate_bytes'] / s['lower_bound_bytes']:.3f}",
                f"{r['first'] * 1000:.0f}", f"{r['steady'] * 1000:.0f}", f"{r['median'] * 1000:.0f}",
                f"{r['steady'] / base:.2f}" if base else "-", s["allocations_per_inference"],
            ])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    publish_table(
        ["model", "mode", "VmHWM MiB", "inference peak MiB", "intermediate MiB", "lower bound MiB",
         "planned/lower", "first ms", "steady ms", "median ms", "steady vs default", "allocs/infer"], rows, args.out)


if __name__ == "__main__":
    main()
