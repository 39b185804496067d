"""Multi-thread: T requests on one compiled model, each in its own thread, agree with a sequential run.

Also: one request shared by two threads is refused (ConcurrencyError) instead of corrupting its
buffers, and the harness's ``threads`` pipeline neither leaks nor fails under the chosen allocator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import runtime as rt
from stress_tests.runner import run_cell
from stress_tests.spec import CellSpec

pytestmark = pytest.mark.stress


def in_threads(work: Callable[[int], None], n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001  (collected and asserted in the main thread)
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("mode", ["default", "arena"])
@pytest.mark.parametrize("threads, rounds", [(4, 5), pytest.param(8, 200, marks=pytest.mark.full)])
def test_requests_in_threads_match_sequential(zoo_model, mode: str, threads: int, rounds: int) -> None:
    path, feeds = zoo_model("mobilenetv2", size=64)
    compiled = rt.Core().compile_model(str(path), memory_mode=mode)
    rng = np.random.default_rng(1)
    inputs = [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in feeds.items()} for _ in range(threads)]
    reference = [{k: v.copy() for k, v in compiled.infer(x).items()} for x in inputs]
    requests = [compiled.create_infer_request() for _ in range(threads)]
    got: list[list[dict[str, np.ndarray]]] = [[] for _ in range(threads)]

    def work(i: int) -> None:
        for _ in range(rounds):
            got[i].append({k: v.copy() for k, v in requests[i].infer(inputs[i]).items()})

    assert not in_threads(work, threads)
    for i in range(threads):
        for out in got[i]:
            for name, ref in reference[i].items():
                np.testing.assert_array_equal(out[name], ref, err_msg=f"thread {i}, output {name}")


def test_one_request_shared_by_threads_is_refused_not_corrupted(zoo_model) -> None:
    path, feeds = zoo_model("mobilenetv2", size=64)
    compiled = rt.Core().compile_model(str(path))
    reference = {k: v.copy() for k, v in compiled.infer(feeds).items()}
    request = compiled.create_infer_request()
    outputs: list[dict[str, np.ndarray]] = []

    def work(_: int) -> None:
        for _ in range(5):
            outputs.append({k: v.copy() for k, v in request.infer(feeds).items()})

    errors = in_threads(work, 2)
    assert all(isinstance(e, rt.ConcurrencyError) for e in errors), errors
    for out in outputs:  # whatever ran, ran alone and right
        for name, ref in reference.items():
            np.testing.assert_array_equal(out[name], ref)


@pytest.mark.parametrize("threads, iterations", [(4, 40), pytest.param(8, 2000, marks=pytest.mark.full)])
def test_threads_pipeline_does_not_leak(cell_settings: dict, tmp_path: Path, threads: int, iterations: int) -> None:
    spec = CellSpec(pipeline="threads", model="mobilenetv2", model_options=(("size", "64"),), threads=threads,
                    iterations=iterations, timeout=1800, **cell_settings)  # type: ignore[arg-type]
    r = run_cell(spec, workdir=tmp_path)
    if r.verdict == "leak" and spec.allocator == "jemalloc" and ("jemalloc.narenas", "1") in spec.tunables:
        # Known false positive of the analysis: with one arena, jemalloc's decay purges make RssAnon
        # a bounded sawtooth (flat over 600 iterations), and setting the purges aside as jumps leaves
        # the rises between them, read as growth. Rule 9 (refill) of stress_tests.analysis now reads
        # the recorded 600-iteration run as inconclusive; shorter runs can still fall through it.
        # Reproduce: memgate run --pipeline threads --model mobilenetv2 --model-option size=64
        # --threads 4 --allocator jemalloc --tunable jemalloc.narenas=1 --iterations 600
        pytest.xfail(f"analysis reads jemalloc narenas:1's purge sawtooth as a leak: {r.reason}")
    assert r.verdict != "leak", r.reason
    assert r.status == "ok", f"{r.status}: {r.reason}\n{r.stderr_tail[-2000:]}"
    assert r.iterations_done == iterations
