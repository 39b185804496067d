"""Steady-state single-image latency: this runtime vs onnxruntime vs onnx's ReferenceEvaluator.

All three run in this one process on one thread (OPENBLAS_NUM_THREADS=1 and
intra_op_num_threads=1 are set before anything loads), on the same feeds; the table
gives median milliseconds and the ratios (runtime / onnxruntime, reference / runtime).

    python benchmarks/bench_latency.py                       # light zoo + generated zoo
    python benchmarks/bench_latency.py --models light:resnet50 --runs 20 --reference-runs 2
    python benchmarks/bench_latency.py --no-reference --threads 2  # OPENBLAS_NUM_THREADS=2 vs intra_op=2
    python benchmarks/bench_latency.py --no-reference --modes       # every memory mode against default
    python benchmarks/bench_latency.py --no-reference --fresh-modes # the same, each mode alone in a process

``--threads N`` gives numpy's BLAS N threads and onnxruntime N intra-op threads (set before
numpy loads). ``--modes`` compiles each model in every memory mode and times them in turns,
adding each mode's latency over default's, the worst of them, and the minor page faults per
``reduce`` inference: the allocator's pages given back to the kernel and touched again.
``--fresh-modes`` runs each mode alone in a fresh process instead, as a user runs one mode:
in rounds, the modes in a rotating order, each round's ratio to that round's ``default``, the
median over rounds. In one process the four requests (and onnxruntime, and the reference
evaluator) share one heap, so ``reduce``'s allocations land among the other modes' buffers.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys


def _threads(argv: list[str]) -> int:
    """``--threads N`` read before numpy loads: the BLAS reads its thread count once, at load."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


THREADS = _threads(sys.argv)
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from bench_op_profile import blas_kernel  # noqa: E402
from fresh import publish_table  # noqa: E402
from timing import interleaved, median_time, time_pair  # noqa: E402

LIGHT = ["light:bvlc_alexnet", "light:densenet121", "light:inception_v1", "light:inception_v2", "light:resnet50",
         "light:shufflenet", "light:squeezenet", "light:vgg19", "light:zfnet512"]
GENERATED = ["resnet18", "resnet50", "mobilenetv2", "u2netp", "u2net", "bert", "mlp"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=LIGHT + GENERATED)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--reference-runs", type=int, default=1, help="ReferenceEvaluator is slow: fewer runs")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads and onnxruntime intra-op threads")
    ap.add_argument("--modes", action="store_true", help="also time every memory mode against default")
    ap.add_argument("--fresh-modes", action="store_true", help="the same, each mode alone in a fresh process")
    ap.add_argument("--rounds", type=int, default=3, help="--fresh-modes: rounds of one process per mode")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from onnx.reference import ReferenceEvaluator

    import runtime as rt

    rows = []
    for name in args.models:
        pair = time_pair(name, args.runs, args.threads)
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
        if args.modes:
            rows[-1] += mode_columns(rt, model, feeds, args.runs)
        if args.fresh_modes:
            rows[-1] += fresh_mode_columns(rt, name, args.runs, args.rounds)
        print(" | ".join(rows[-1]), flush=True)
    header = ["model", "runtime ms", "onnxruntime ms", "runtime / ort", "reference ms",
              "reference / runtime", "max abs diff vs ort"]
    if args.modes:
        header += [f"{m} / default" for m in rt.MEMORY_MODES if m != "default"] + ["worst mode / default",
                                                                                  "reduce faults / inference"]
    if args.fresh_modes:
        header += [f"fresh {m} / default" for m in rt.MEMORY_MODES if m != "default"] + [
            "fresh worst / default", "fresh reduce faults / inference"]
    print(f"BLAS: {blas_kernel()}; OPENBLAS_NUM_THREADS={THREADS}, onnxruntime intra_op_num_threads={args.threads}")
    publish_table(header, rows, args.out)


def mode_columns(rt: Any, model: Any, feeds: dict[str, Any], runs: int) -> list[str]:
    """Each memory mode's latency over default's, all compiled here and timed in turns, and the
    minor page faults per ``reduce`` inference (memory the allocator gave back, touched again)."""
    requests = {m: rt.Core().compile_model(model, memory_mode=m).create_infer_request() for m in rt.MEMORY_MODES}
    faults = {m: 0 for m in requests}

    def counted(mode: str, request: Any) -> Any:
        def call() -> None:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            request.infer(feeds)
            faults[mode] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        return call

    calls = [counted(m, r) for m, r in requests.items()]
    for call in calls:  # the warm-up round, not counted
        call()
    faults.update(dict.fromkeys(faults, 0))
    times = dict(zip(requests, interleaved(calls, runs, warmup=0)))
    ratios = [times[m] / times["default"] for m in rt.MEMORY_MODES if m != "default"]
    return [f"{r:.3f}" for r in ratios] + [f"{max(ratios):.3f}", f"{faults['reduce'] / runs:.0f}"]


FRESH_CHILD = """
import resource, statistics
import runtime as rt
compiled = rt.Core().compile_model({path!r}, memory_mode={mode!r})
feeds = feeds_for(compiled)
req = compiled.create_infer_request()
req.infer(feeds)
req.infer(feeds)
times = []
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
while len(times) < {runs} and (len(times) < 3 or sum(times) < 2.0):  # at least 3 runs, about 2 s at most
    t = time.perf_counter(); req.infer(feeds); times.append(time.perf_counter() - t)
emit(median=statistics.median(times), faults=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / len(times))
"""


def fresh_mode_columns(rt: Any, name: str, runs: int, rounds: int) -> list[str]:
    """Each memory mode over default, each mode alone in a fresh process; median over rounds."""
    import tempfile

    from fresh import run_fresh, save_model

    path = save_model(name, Path(tempfile.gettempdir()) / "memgate-bench-models")
    modes = list(rt.MEMORY_MODES)
    ratios: dict[str, list[float]] = {m: [] for m in modes if m != "default"}
    faults = []
    for r in range(rounds):
        order = modes[r % len(modes):] + modes[:r % len(modes)]
        got = {m: run_fresh(FRESH_CHILD.format(path=str(path), mode=m, runs=runs)) for m in order}
        for m in ratios:
            ratios[m].append(got[m]["median"] / got["default"]["median"])
        faults.append(got["reduce"]["faults"])
    med = {m: statistics.median(v) for m, v in ratios.items()}
    return [f"{med[m]:.3f}" for m in ratios] + [f"{max(med.values()):.3f}", f"{statistics.median(faults):.0f}"]


if __name__ == "__main__":
    main()
