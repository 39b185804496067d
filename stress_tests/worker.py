"""The child: ``python -m stress_tests.worker <job.json> <result.json>``.

(``python -m stress_tests.worker --verify NAME PATH`` only reports which allocator it runs on.)

It proves the allocator, runs one cell's pipeline and measures it. Samples go to a journal
as they are taken (see ``journal``); the final result is written atomically at the end. The
child never analyses: scipy would only add to what is being measured.

Per iteration, after the body: garbage collection, optional ``malloc_trim(0)``, then the
sample (/proc, then the allocator's live bytes and Python's block count: ``heap``), into storage
allocated before the loop (CPython's refleak hunter does the same) so
that measuring does not grow what is measured. Where /proc/self/clear_refs allows it the peak
is reset at every iteration start: ``IterPeak`` is then each iteration's own peak and
``VmHWM`` their running maximum, the high-water mark since the loop began (setup's peak no
longer hides the loop's). Without the reset, ``IterPeak`` is missing and ``VmHWM`` is the
process's own high-water mark.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .heap import HeapCounter, HeapCounterError, open_counter
from .journal import Journal, journal_path
from .probes import Probe, SeriesBuffer, make_probe, tracemalloc_current, tracemalloc_overhead, tracemalloc_start
from .settle import TIMED, SettleError, Settler, make_settler
from .spec import Applied, CellResult, CellSpec, StageMemory, write_json_atomic

EXIT_RESULT = 0  # a result file was written, whatever the cell's status


def write_job(path: Path, spec: CellSpec, model_path: str, feeds_path: str, workdir: str) -> None:
    write_json_atomic(path, {"spec": spec.to_dict(), "model_path": model_path,
                             "feeds_path": feeds_path, "workdir": workdir})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "--verify":  # memgate doctor: which allocator is this process on?
        from .verify import verify_allocator

        v = verify_allocator(args[1], args[2] or None)
        try:
            heap = open_counter(args[1], args[2] or None).source if v.ok else ""
        except HeapCounterError as e:
            heap = f"none ({e})"
        print(json.dumps({"ok": v.ok, "message": v.message, "evidence": v.evidence, "version": v.version,
                          "heap": heap}))
        return 0
    if len(args) != 2:
        print("usage: python -m stress_tests.worker <job.json> <result.json>", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    spec = CellSpec.from_dict(job["spec"])
    result_path = Path(args[1])
    journal = Journal(journal_path(result_path))
    try:
        result = run(spec, job, journal)
    except Exception as e:  # noqa: BLE001  (any failure of the cell is its result, not a crash)
        result = CellResult(spec, "failed", reason=f"{type(e).__name__}: {e}",
                            stderr_tail="".join(traceback.format_exc(limit=8)))
        _merge_journal(result, journal_path(result_path))
    journal.close()
    write_json_atomic(result_path, result.to_dict())
    return EXIT_RESULT


def _merge_journal(result: CellResult, path: Path) -> None:
    from .journal import read_journal

    partial = read_journal(path)
    result.series, result.latency, result.stages = partial.series, partial.latency, partial.stages
    result.probe = partial.probe
    if partial.applied:
        result.applied = Applied(**partial.applied)
    if partial.last_stage:
        result.reason += f" (in stage {partial.last_stage})"


def verify(spec: CellSpec) -> Applied:
    from .allocators import recorded_env
    from .verify import verify_allocator, verify_tunables

    alloc = verify_allocator(spec.allocator, spec.allocator_path)
    applied = Applied(allocator=spec.allocator, allocator_path=spec.allocator_path, allocator_version=alloc.version,
                      verified=alloc.ok, evidence=list(alloc.evidence), env=recorded_env(os.environ),
                      tunables={k: v for k, v in spec.tunables}, notes=list(alloc.notes))
    if not alloc.ok:
        applied.notes.insert(0, alloc.message)
        return applied
    tun = verify_tunables(spec.allocator, spec.allocator_path, list(spec.tunables), os.environ)
    applied.evidence += tun.evidence
    applied.notes += tun.notes
    if not tun.ok:
        applied.verified = False
        applied.notes.insert(0, tun.message)
    return applied


def run(spec: CellSpec, job: dict[str, Any], journal: Journal) -> CellResult:
    applied = verify(spec)
    _record_adapter_env(spec, applied)
    probe = make_probe()
    probe_info: dict[str, Any] = {"source": probe.source, "peak_reset": probe.peak_reset,
                                  "peak_reset_error": getattr(probe, "peak_reset_error", ""), "gc_per_iteration": True}
    counter = _heap_counter(spec, applied, probe_info)
    fields = (tuple(probe.fields) + (counter.fields if counter else ()) + ("IterPeak",)
              + (("py_traced",) if spec.tracemalloc else ()))
    journal.write("start", fields=list(fields), probe=probe_info, applied=_asdict(applied), pid=os.getpid())
    if not applied.verified:
        return CellResult(spec, "failed", reason=applied.notes[0], applied=applied, probe=probe_info)

    from . import pipelines
    from .adapters import AdapterError, get_adapter
    from .models import load_feeds

    case = pipelines.case(spec.pipeline)
    try:
        adapter = get_adapter(spec.runtime)
        mode = case.mode or spec.mode
        adapter.check_mode(mode)
        missing = sorted(f for f in case.needs if not adapter.supports(f))
        if missing:
            raise AdapterError(f"{spec.runtime} does not support {', '.join(missing)}, which {spec.pipeline} needs")
    except AdapterError as e:
        return CellResult(spec, "skipped", reason=str(e), applied=applied, probe=probe_info)
    if case.mode and case.mode != spec.mode:
        applied.notes.append(f"{spec.pipeline} runs in {case.mode} mode (it imposes it), not {spec.mode}")
    feeds = load_feeds(job["feeds_path"])
    # Everything imported so far lives as long as the process: out of the collector's sight, a
    # full collection per iteration costs microseconds instead of milliseconds. Reference
    # counting still frees these objects; only their cycles would wait, and imports make none.
    gc.collect()
    gc.freeze()
    probe_info["gc_frozen_objects"] = gc.get_freeze_count()
    tracemalloc_start(spec.tracemalloc)
    ctx = pipelines.Context(
        spec=spec, adapter=adapter, model_path=job["model_path"], feeds=feeds,
        options=pipelines.core_options(spec, case, str(Path(job["workdir"]) / "cache")), mode=mode,
    )
    trim = _malloc_trim() if spec.trim else None
    if spec.trim and trim is None:
        applied.notes.append("--trim asked but malloc_trim is unavailable here")
    settle = _settler(spec, probe_info, applied)
    stages = [measure(probe, name, pipelines.STEPS[step], ctx, journal, settle, counter)
              for name, step in zip(pipelines.stage_names(case.setup), case.setup)]
    ctx.mark()
    result = CellResult(spec, "ok", stages=stages, applied=applied, probe=probe_info)
    if case.iterates:
        _loop(spec, case, ctx, probe, counter, fields, trim, journal, result, str(job["workdir"]), settle)
        settled_end(probe, settle, result)
    result.memory_stats = dict(ctx.memory_stats)
    if ctx.compile_cache:
        result.memory_stats["compile_cache"] = dict(ctx.compile_cache)
        if spec.pipeline == "cached_recompile" and not ctx.compile_cache.get("hit"):
            result.notes.append(f"the runtime never hit its compile cache ({dict(ctx.compile_cache)})")
    result.notes += ctx.notes
    probe.close()
    return result


def settled_end(probe: Probe, settle: Settler | None, result: CellResult) -> None:
    """After the loop of a timer-driven allocator: settle it and read VmRSS/RssAnon once more.

    The steady levels of jemalloc and mimalloc cells hold however many freed pages their timers had
    not yet returned: u2netp's reinfer under jemalloc ``narenas:1`` held RssAnon at 18.8 MiB above
    its start for 20 iterations, then at 24.5 MiB for the rest, with the live heap at 5.8 MiB
    throughout, and a repeat judged against its siblings failed ``steady_anon`` by 1.4x its
    tolerance. ``metrics`` gates the settled reading for these allocators (what the program still
    holds, plus fragmentation) and keeps the loop's median as information.
    """
    if settle is None:
        return
    gc.collect()
    settle()
    s = probe.sample()
    result.probe["settled_end"] = {"VmRSS": s["VmRSS"], "RssAnon": s["RssAnon"]}


def _record_adapter_env(spec: CellSpec, applied: Applied) -> None:
    """The variables the adapter asked the parent to set (workarounds), as this process has them."""
    from .adapters import AdapterError, adapter_class

    try:
        wanted_env = adapter_class(spec.runtime).environment(spec.allocator)
    except AdapterError:
        return  # said below, when the adapter is constructed
    for key, wanted in wanted_env.items():
        value = os.environ.get(key)
        if value is not None:
            applied.env[key] = value
        if value == wanted:
            applied.notes.append(f"{spec.runtime} under {spec.allocator}: {key}={value} set by its adapter")
        else:
            applied.notes.append(f"{spec.runtime} under {spec.allocator}: its adapter asks for {key}={wanted}, "
                                 f"the environment has {key}={value or '(unset)'}")


def _heap_counter(spec: CellSpec, applied: Applied, probe_info: dict[str, Any]) -> HeapCounter | None:
    """The proven allocator's live-bytes counter, or None (said in the probe record and the notes)."""
    if spec.python_malloc:
        # Evidence, not trust: pymalloc off means it holds no block at all.
        off = sys.getallocatedblocks() == 0
        applied.evidence.append("PYTHONMALLOC=malloc: pymalloc off (sys.getallocatedblocks() == 0)" if off else
                                f"PYTHONMALLOC=malloc asked but pymalloc holds {sys.getallocatedblocks()} blocks")
        if not off:
            applied.verified = False
            applied.notes.insert(0, "PYTHONMALLOC=malloc did not take effect in the child")
    if not applied.verified:
        return None
    try:
        counter = open_counter(spec.allocator, spec.allocator_path)
    except HeapCounterError as e:
        probe_info["heap"] = {"error": str(e)}
        applied.notes.append(f"no heap counter: {e}; RSS decides")
        return None
    probe_info["heap"] = counter.info()
    applied.notes += counter.notes
    return counter


class IterationRecorder:
    """The per-iteration sample of a measured loop, into storage allocated before it.

    Shared by the pipeline loop and a target's loop (``child.loop``): /proc figures, the heap
    counter less what the harness's own hunters hold (``held``: live bytes, blocks), tracemalloc's
    figure, each iteration's own peak and the running one, the latency, then the journal line.
    """

    def __init__(self, spec: CellSpec, probe: Probe, counter: HeapCounter | None, fields: tuple[str, ...],
                 journal: Journal, result: CellResult) -> None:
        self.spec, self.probe, self.counter, self.journal = spec, probe, counter, journal
        self.buf = SeriesBuffer(fields, spec.total_iterations)
        self.width = len(fields)
        self.per_iteration_peak = probe.peak_reset == "clear_refs"
        result.probe["peak_per_iteration"] = self.per_iteration_peak
        result.probe["hwm_origin"] = "loop" if self.per_iteration_peak else "process"
        self.hwm, self.own_peak = fields.index("VmHWM"), fields.index("IterPeak")
        self.at_heap = len(probe.fields)
        self.held = [0, 0]
        if counter is not None:
            counter.prime()

    def hold(self, work: Callable[[], Any]) -> Any:
        """Run the harness's own ``work`` (a hunter's snapshot): the heap it keeps is not the program's."""
        if self.counter is None:
            return work()
        live, blocks = self.counter.live(), sys.getallocatedblocks()
        out = work()
        self.held[0] += self.counter.live() - live
        self.held[1] += sys.getallocatedblocks() - blocks
        return out

    def record(self, i: int, latency: float, first_peak: int | None = None) -> None:
        """Sample iteration ``i`` (``first_peak``: the first iteration's stages' peak, split by their resets)."""
        buf, base = self.buf, i * self.width
        self.probe.sample_into(buf.data, base)
        if self.counter is not None:
            self.counter.sample_into(buf.data, base + self.at_heap)
            # tracemalloc keeps its traces and every traceback it ever saw on the heap: the hunt's, not the program's
            own = tracemalloc_overhead() if self.spec.tracemalloc else 0
            buf.data[base + self.at_heap] -= self.held[0] + own
            buf.data[base + self.at_heap + 1] -= self.held[1]
        if self.spec.tracemalloc:
            buf.data[base + self.width - 1] = tracemalloc_current() or 0
        if self.per_iteration_peak:
            peak = buf.data[base + self.hwm]
            if i == 0 and first_peak is not None:
                peak = max(peak, first_peak)
            buf.data[base + self.own_peak] = peak
            buf.data[base + self.hwm] = max(peak, buf.data[base - self.width + self.hwm]) if i else peak
        buf.latency[i] = latency
        buf.filled = i + 1
        self.journal.sample(i, [None if v < 0 else v for v in buf.data[base:base + self.width]], latency)


def _loop(spec: CellSpec, case: Any, ctx: Any, probe: Probe, counter: HeapCounter | None, fields: tuple[str, ...],
          trim: Any, journal: Journal, result: CellResult, workdir: str = ".", settle: Settler | None = None) -> None:
    from . import pipelines
    from .hunt import Hunter

    total = spec.total_iterations
    rec = IterationRecorder(spec, probe, counter, fields, journal, result)
    steps = [pipelines.STEPS[s] for s in case.body]
    first_names = pipelines.stage_names(case.body, prefix="iter1 ")
    leak_store: list[bytearray] = []
    fault_kind, fault_arg, fault_at = _parse_fault(spec.inject_fault)
    hunter = Hunter(spec, total) if spec.tracemalloc else None
    native = None
    if spec.native:
        from .native import NativeHunter

        native = NativeHunter(total, spec.warmup, workdir)
    for i in range(total):
        if i == fault_at:
            _fault(fault_kind, fault_arg)
        if native is not None and i in native.points:
            # memray's own buffers are not the program's: the heap they take is held aside like the hunter's
            rec.hold(functools.partial(native.before_iteration, i))
        probe.reset_peak()
        first_peak = None
        if i == 0:  # the first iteration's steps are stages: where a pipeline's memory goes
            t0 = time.perf_counter()
            result.stages += [measure(probe, n, s, ctx, journal, settle, counter) for n, s in zip(first_names, steps)]
            latency = time.perf_counter() - t0
            first_peak = max((s.peak for s in result.stages[-len(steps):] if s.peak is not None), default=None)
        else:
            t0 = time.perf_counter()
            for step in steps:
                step(ctx)
            latency = time.perf_counter() - t0
        pipelines.inject_leak(leak_store, spec.inject_leak_bytes)
        gc.collect()
        if trim is not None:
            trim(0)
        rec.record(i, latency, first_peak)
        if hunter is not None:
            if i in hunter.points:
                rec.hold(functools.partial(hunter.after_iteration, i))
            else:
                hunter.after_iteration(i)
    buf = rec.buf
    result.series = buf.series()
    result.latency = list(buf.latency)
    if hunter is not None:
        result.hunt = [dict(site, source="tracemalloc") for site in hunter.sites()]
    if native is not None:
        result.hunt += native.sites()


def measure(probe: Probe, name: str, step: Any, ctx: Any, journal: Journal,
            settle: Settler | None = None, counter: HeapCounter | None = None) -> StageMemory:
    """Run one step with the peak reset at its start: its RSS and heap deltas and its own peak.

    With ``settle``, the allocator gives back its free pages before the stage and before the
    "after" sample, so the delta does not depend on its purge timers (``stress_tests.settle``);
    the reading before that last settle is kept as ``rss_unsettled`` / ``anon_unsettled``.
    """
    journal.write("begin_stage", stage=name)
    gc.collect()
    if settle is not None:
        settle()
    reset = probe.reset_peak()
    before = probe.sample()
    heap_before = counter.sample() if counter is not None else {}
    t0 = time.perf_counter()
    step(ctx)
    seconds = time.perf_counter() - t0
    raw = probe.sample()
    # The heap counter is exact: garbage the step left for the collector is not what it keeps.
    # (RSS is read first, as it always was: its stage figures stay comparable with the baselines.)
    gc.collect()
    heap_after = counter.sample() if counter is not None else {}
    after = raw
    if settle is not None:
        settle()
        after = probe.sample()
    # The kernel sets the reset high-water mark from its per-CPU RSS counters, which may lag the
    # exact RSS that /proc reports by a few pages; a stage's peak is at least its end points.
    known = [v for v in (raw["VmHWM"], before["VmRSS"], raw["VmRSS"]) if v is not None]
    stage = StageMemory(name, before["VmRSS"], after["VmRSS"], before["RssAnon"], after["RssAnon"],
                        max(known) if raw["VmHWM"] is not None else None, "clear_refs" if reset else "hwm", seconds,
                        raw["VmRSS"] if settle is not None else None, raw["RssAnon"] if settle is not None else None,
                        heap_before.get("HeapLive"), heap_after.get("HeapLive"), heap_before.get("PyBlocks"),
                        heap_after.get("PyBlocks"))
    journal.write("stage", **_asdict(stage))
    return stage


def _settler(spec: CellSpec, probe_info: dict[str, Any], applied: Applied) -> Settler | None:
    """The settling call for the stage samples of an allocator with purge timers (``settle.TIMED``), or None."""
    if spec.allocator not in TIMED:
        probe_info["settle"] = ""
        return None
    try:
        settle = make_settler(spec.allocator)
    except SettleError as e:
        probe_info["settle"] = ""
        applied.notes.append(f"stage figures are unsettled (they depend on the allocator's timers): {e}")
        return None
    probe_info["settle"] = settle.how
    return settle


def _malloc_trim() -> Any:
    import ctypes

    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    return fn


def _parse_fault(text: str) -> tuple[str, str, int]:
    """``"signal:SEGV@3"`` -> ("signal", "SEGV", 3); empty -> never."""
    if not text:
        return "", "", -1
    what, _, at = text.partition("@")
    kind, _, arg = what.partition(":")
    return kind, arg, int(at or 0)


def _fault(kind: str, arg: str) -> None:
    """Self-test faults for the harness's crash handling."""
    sys.stderr.write(f"memgate worker: injected fault {kind}:{arg}\n")
    sys.stderr.flush()
    if kind == "signal":
        os.kill(os.getpid(), getattr(signal, f"SIG{arg or 'SEGV'}"))
        time.sleep(5)  # a handled or blocked signal must not fall through into normal behaviour
        os._exit(70)
    if kind == "exit":
        os._exit(int(arg or 1))
    if kind == "hang":
        while True:
            time.sleep(3600)
    if kind == "raise":
        raise RuntimeError(f"injected fault: {arg or 'raise'}")
    raise ValueError(f"unknown inject_fault kind {kind!r}; use signal:NAME, exit:CODE, hang or raise")


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


if __name__ == "__main__":
    raise SystemExit(main())
