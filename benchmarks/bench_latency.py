"""Steady-state single-image latency: this runtime vs onnxruntime vs onnx's ReferenceEvaluator.

All three run in this one process on one thread (OPENBLAS_NUM_THREADS=1 and
intra_op_num_threads=1 are set before anything loads), on the same feeds; the table
gives median milliseconds and the ratios (runtime / onnxruntime, reference / runtime).

    python benchmarks/bench_latency.py                       # light zoo + generated zoo
    python benchmarks/bench_latency.py --models light:resnet50 --runs 20 --reference-runs 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from fresh import markdown_table  # noqa: E402
from timing import median_time, time_pair  # noqa: E402

LIGHT = ["light:bvlc_alexnet", "light:densenet121", "light:inception_v1", "light:inception_v2", "light:resnet50",
         "light:shufflenet", "light:squeezenet", "light:vgg19", "light:zfnet512"]
GENERATED = ["resnet18", "resnet50", "mobilenetv2", "u2netp", "u2net", "bert", "mlp"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=LIGHT + GENERATED)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--reference-runs", type=int, default=1, help="ReferenceEvaluator is slow: fewer runs")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from onnx.reference import ReferenceEvaluator

    rows = []
    for name in args.models:
        pair = time_pair(name, args.runs)
        model, feeds, compiled, req, sess = pair.model, pair.feeds, pair.compiled, pair.request, pair.session
        ours, peer = pair.ours, pair.peer
        ref = None
        if not args.no_reference:
            evaluator = ReferenceEvaluator(model)
            ref = median_time(lambda: evaluator.run(None, feeds), args.reference_runs)  # warm, like the others
        out_ours = req.infer(feeds)
        out_peer = sess.run(None, feeds)
        err = max(float(np.max(np.abs(out_ours[o.name] - p))) for o, p in zip(compiled.outputs, out_peer))
        rows.append([name, f"{ours * 1e3:.1f}", f"{peer * 1e3:.1f}", f"{ours / peer:.2f}",
                     "-" if ref is None else f"{ref * 1e3:.0f}", "-" if ref is None else f"{ref / ours:.1f}",
                     f"{err:.1e}"])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["model", "runtime ms", "onnxruntime ms", "runtime / ort", "reference ms",
                            "reference / runtime", "max abs diff vs ort"], rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
