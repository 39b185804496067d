"""Where a compiled model's inference time goes: a per-op-type breakdown of the runtime's steps.

The model is compiled once (arena mode, as ``bench_latency.py`` times it) and run warm; then
each bound step's ``run`` is timed alone, in plan order, on the same buffers the executor
uses, and the per-step medians are summed by kind. Conv is split by its shape (depthwise,
grouped, 1x1, kxk) because those take different kernel paths. One BLAS thread, like the
latency table; onnxruntime's whole-model latency is printed beside the total.

    python benchmarks/bench_op_profile.py light:shufflenet mobilenetv2 --runs 10
    python benchmarks/bench_op_profile.py u2netp --top 8 --steps 5
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

from fresh import markdown_table  # noqa: E402
from timing import median_time, time_pair  # noqa: E402


def step_kind(step: Any, infos: dict[str, Any]) -> str:
    """The op type, with Conv split by the kernel path its shape takes."""
    if step.op_type != "Conv":
        return str(step.op_type)
    x, w = infos[step.inputs[0]].dims, infos[step.inputs[1]].dims
    groups = x[1] // w[1]
    ksz = 1
    for d in w[2:]:
        ksz *= d
    if groups > 1 and w[1] == 1 and w[0] == x[1]:
        return "Conv depthwise"
    if groups > 1:
        return "Conv grouped"
    return "Conv 1x1" if ksz == 1 else "Conv kxk"


def profile_steps(request: Any, feeds: dict[str, Any], runs: int) -> list[tuple[str, str, float]]:
    """(node, kind, median seconds) of each step of ``request``'s bound static plan."""
    request.infer(feeds)  # binds the plan and fills every buffer with this feed's tensors
    bound = request._bound  # the executor's own binding: the profile times exactly what infer runs
    if bound is None or bound.plan.dynamic:
        raise SystemExit("profiling needs a static plan (compile in arena, reuse or default mode)")
    program = bound.program
    samples: list[list[float]] = [[] for _ in bound.steps]
    for _ in range(runs):
        # One warm pass per round keeps caches in the state a real inference leaves them in.
        for i, (run, ins, outs, scr) in enumerate(bound.steps):
            start = time.perf_counter()
            run(ins, outs, scr)
            samples[i].append(time.perf_counter() - start)
    return [(s.node, step_kind(s, program.infos), statistics.median(t))
            for s, t in zip(program.steps, samples)]


def blas_kernel() -> str:
    """numpy's BLAS library, version and kernel architecture, as threadpoolctl reports them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl missing)"
    return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--top", type=int, default=10, help="op kinds shown per model")
    ap.add_argument("--steps", type=int, default=0, help="also list the N slowest single steps")
    args = ap.parse_args()

    for name in args.models:
        pair = time_pair(name, args.runs)
        if name == args.models[0]:  # numpy's BLAS is only loaded (and visible to threadpoolctl) now
            print(f"BLAS: {blas_kernel()}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
        steps = profile_steps(pair.request, pair.feeds, args.runs)
        ours = median_time(lambda: pair.request.infer(pair.feeds), args.runs)
        total = sum(t for _, _, t in steps)
        by_kind: dict[str, list[float]] = defaultdict(list)
        for _, kind, t in steps:
            by_kind[kind].append(t)
        rows = [[kind, str(len(ts)), f"{sum(ts) * 1e3:.2f}", f"{100 * sum(ts) / total:.0f}%"]
                for kind, ts in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))[:args.top]]
        print(f"\n### {name}: steps {total * 1e3:.1f} ms, infer {ours * 1e3:.1f} ms, "
              f"onnxruntime {pair.peer * 1e3:.1f} ms (ratio {ours / pair.peer:.2f})")
        print(markdown_table(["op", "steps", "ms", "share"], rows))
        if args.steps:
            slow = sorted(steps, key=lambda s: -s[2])[:args.steps]
            print(markdown_table(["node", "op", "ms"], [[n, k, f"{t * 1e3:.2f}"] for n, k, t in slow]))


if __name__ == "__main__":
    main()
