"""How far the ReferenceEvaluator ratio can go when Conv is im2col plus one BLAS matmul.

For each model this measures, in one process on one thread:

- the runtime's warm latency, and onnxruntime's;
- the GEMM floor: every Conv of the compiled plan as the one matmul it becomes
  (M x K times K x N, from ``describe_plan()``), timed alone on warm operands. No
  im2col, bias, activation or other op is counted, so no im2col runtime can beat it;
- ReferenceEvaluator's warm latency, split by op type (each node's ``run`` timed);
- the ratio now (reference / runtime) and its ceiling (reference / GEMM floor).

    python benchmarks/bench_conv_floor.py
    python benchmarks/bench_conv_floor.py --models light:resnet50 --runs 15 --reference-runs 5
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from fresh import markdown_table  # noqa: E402
from timing import median_time, time_pair  # noqa: E402


def conv_shapes(plan: list[dict[str, Any]]) -> list[tuple[list[int], list[int], list[int]]]:
    """(input, weight, output) shapes of each Conv step of ``describe_plan()``."""
    return [(step["inputs"][0]["shape"], step["inputs"][1]["shape"], step["outputs"][0]["shape"])
            for step in plan if step["op_type"] == "Conv"]


def conv_gemms(plan: list[dict[str, Any]]) -> list[tuple[int, int, int, int]]:
    """(groups, M/groups, K, N) of the one matmul each Conv step runs, per image."""
    shapes = []
    for x, w, out in conv_shapes(plan):
        groups = x[1] // w[1]
        shapes.append((groups, w[0] // groups, int(np.prod(w[1:])), int(np.prod(out[2:]))))
    return shapes


def gemm_floor(shapes: list[tuple[int, int, int, int]], runs: int) -> float:
    """Seconds for all the Conv matmuls of one inference, each timed alone (median of runs)."""
    rng = np.random.default_rng(0)
    total = 0.0
    for g, m, k, n in shapes:
        a = rng.standard_normal((g, m, k), dtype=np.float32)
        b = rng.standard_normal((g, k, n), dtype=np.float32)
        c = np.empty((g, m, n), np.float32)
        total += median_time(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), runs)
    return total


def reference_split(model: Any, feeds: dict[str, np.ndarray], runs: int) -> tuple[float, dict[str, float]]:
    """ReferenceEvaluator's median latency, split by each op type's share of the timed runs."""
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    per_op: dict[str, float] = defaultdict(float)
    for node in evaluator.rt_nodes_:
        inner = node.run

        def timed(*args: Any, _inner: Callable[..., Any] = inner, _op: str = node.op_type, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return _inner(*args, **kw)
            finally:
                per_op[_op] += time.perf_counter() - start

        node.run = timed
    evaluator.run(None, feeds)  # warm-up
    per_op.clear()
    total = median_time(lambda: evaluator.run(None, feeds), runs)
    timed_sum = sum(per_op.values()) or 1.0
    # Each op type's share of all timed runs, applied to the median run.
    return total, {op: total * s / timed_sum for op, s in per_op.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["light:resnet50", "resnet50"])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--reference-runs", type=int, default=5)
    args = ap.parse_args()

    rows = []
    for name in args.models:
        pair = time_pair(name, args.runs)
        model, feeds, ours, peer = pair.model, pair.feeds, pair.ours, pair.peer
        shapes = conv_gemms(pair.compiled.describe_plan())
        floor = gemm_floor(shapes, args.runs)
        flops = sum(2 * g * m * k * n for g, m, k, n in shapes)
        ref, split = reference_split(model, feeds, args.reference_runs)
        top = sorted(split.items(), key=lambda kv: -kv[1])[:2]
        rows.append([
            name, f"{ours * 1e3:.1f}", f"{peer * 1e3:.1f}", f"{floor * 1e3:.1f}", f"{flops / floor / 1e9:.0f}",
            f"{ref * 1e3:.0f}", ", ".join(f"{op} {s * 1e3:.0f}" for op, s in top),
            f"{ref / ours:.1f}", f"{ref / floor:.1f}",
        ])
        print(" | ".join(rows[-1]), flush=True)
    print(markdown_table(
        ["model", "runtime ms", "onnxruntime ms", "Conv GEMM floor ms", "floor GFLOP/s", "reference ms",
         "reference's two largest op types (ms)", "reference / runtime", "ceiling: reference / floor"],
        rows,
    ))


if __name__ == "__main__":
    main()
