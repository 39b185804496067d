"""Warm, in-process latency helpers shared by the latency benchmarks (one thread each)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def median_time(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    return interleaved([fn], runs, warmup)[0]


def ort_session(model: Any, threads: int = 1) -> Any:
    """An onnxruntime CPU session on ``threads`` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Its pool threads spin after each run; timed in turns with this runtime, that spinning took
    # the second core from our BLAS thread (2 threads: ResNet-18 70 ms with spinning, 30 without).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@dataclass
class Pair:
    """One model, compiled by this runtime (arena mode) and loaded in onnxruntime, both timed warm."""

    model: Any
    feeds: dict[str, Any]
    compiled: Any
    request: Any
    session: Any
    ours: float  # median seconds per inference
    peer: float


def interleaved(fns: list[Callable[[], object]], runs: int, warmup: int = 1) -> list[float]:
    """Median seconds of each of ``fns``, timed in turns (one call of each per round).

    Load from other jobs on a shared machine then falls on every candidate alike, so their
    ratio holds better than medians timed one after another.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, samples):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def time_pair(name: str, runs: int, threads: int = 1) -> Pair:
    """Median warm latency of zoo model ``name`` in this runtime and in onnxruntime, same feeds, in turns."""
    import runtime as rt
    from runtime import zoo

    model = zoo.get(name)
    feeds = zoo.sample_inputs(model, seed=0)
    compiled = rt.Core().compile_model(model, memory_mode="arena")
    request = compiled.create_infer_request()
    session = ort_session(model, threads)
    ours, peer = interleaved([lambda: request.infer(feeds), lambda: session.run(None, feeds)], runs)
    return Pair(model, feeds, compiled, request, session, ours, peer)
