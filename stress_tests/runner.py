"""Runs cells: one child process each, a controlled environment, a timeout, and a result always.

The child inherits the caller's environment (PYTHONPATH included; the harness's own folder is
added so an uninstalled checkout works) plus the allocator's preload and tunables. It runs in
its own session, so a timeout kills its whole process group. Whatever happens, the parent
returns a CellResult: from the child's result file, or rebuilt from its journal with the cause
(signal, likely OOM kill, exit code and stderr tail, timeout).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import allocators
from .journal import journal_path, read_journal
from .spec import TEST_PREFIX, Applied, CellResult, CellSpec
from .units import format_size

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
STDERR_TAIL = 25  # lines
#: Lines allocators and the dynamic loader print when they ignore what they were told.
_COMPLAINTS = ("ERROR: ld.so:", "<jemalloc>:", "mimalloc: error", "tcmalloc: ")

Progress = Callable[[CellSpec, int, int], None]


def child_env(spec: CellSpec, found: allocators.Found, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the caller's, the allocator's preload and tunables, and the import path.

    A pipeline child gets the harness's folder first on PYTHONPATH; a target child gets it taken
    off (the user's packages must not be shadowed by ours: ``runtime``, ``tests``, ``benchmarks``).
    """
    env, _ = allocators.child_environment(found, spec.tunables, os.environ if base is None else base)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    own = spec.target and not spec.target.startswith(TEST_PREFIX)
    if own:
        kept = [p for p in paths if os.path.abspath(p) != PACKAGE_ROOT]
        if kept:
            env["PYTHONPATH"] = os.pathsep.join(kept)
        else:
            env.pop("PYTHONPATH", None)
    elif PACKAGE_ROOT not in paths:
        env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, *paths])
    env["PYTHONUNBUFFERED"] = "1"
    if spec.blas_kernel:
        env["OPENBLAS_CORETYPE"] = spec.blas_kernel
    if spec.python_malloc:  # pymalloc off: Python's small objects become visible to the heap counter
        env["PYTHONMALLOC"] = "malloc"
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a crash leaves a Python traceback in the stderr tail
    for key, value in adapter_environment(spec).items():
        env.setdefault(key, value)  # a workaround the caller overrode stays overridden (and is recorded)
    return env


def adapter_environment(spec: CellSpec) -> dict[str, str]:
    """What the cell's runtime adapter needs in the child's environment under its allocator."""
    from .adapters import AdapterError, adapter_class

    try:
        return dict(adapter_class(spec.runtime).environment(spec.allocator))
    except AdapterError:
        return {}  # the child reports the unknown or broken runtime as the cell's result


def run_cell(spec: CellSpec, *, workdir: Path | None = None, require_allocators: bool = False,
             on_progress: Progress | None = None, base_env: Mapping[str, str] | None = None,
             python: str | None = None, cwd: str | Path | None = None) -> CellResult:
    """Run one cell in a child and return its result (never raises for anything the child does).

    The child's interpreter is ``spec.python``, else ``python``, else this one; it runs in ``cwd``
    (default: this process's working folder), where a target's modules are imported from.
    """
    start = time.monotonic()
    python = spec.python or python or sys.executable
    python = shutil.which(python) or python  # "python3.10" as the user would type it
    found = allocators.find(spec.allocator, spec.allocator_path)
    if not found.installed:
        status = "failed" if (require_allocators or found.how == "--allocator-path") else "skipped"
        return CellResult(spec, status, reason=found.hint, applied=Applied(allocator=spec.allocator))
    spec = spec.replace(allocator_path=found.path)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memgate-")))
        cell_dir = Path(tempfile.mkdtemp(prefix="cell-", dir=workdir))
        try:
            env = child_env(spec, found, base_env)
            command, own_cwd = _command(spec, python, cell_dir, workdir)
        except Exception as e:  # noqa: BLE001  (a cell that cannot be set up is failed, the run goes on)
            return CellResult(spec, "failed", reason=f"{type(e).__name__}: {e}")
        result = _spawn(spec, env, cell_dir, command, own_cwd or (str(cwd) if cwd else None), on_progress)
    result.seconds = time.monotonic() - start
    if result.applied is not None:
        result.applied.notes += _complaints(result.stderr_tail)
    return finish(result)


def _command(spec: CellSpec, python: str, cell_dir: Path, workdir: Path) -> tuple[list[str], str | None]:
    """Write the cell's job file; the child's command line and working folder (None: this one)."""
    job, result = cell_dir / "job.json", str(cell_dir / "result.json")
    if spec.target.startswith(TEST_PREFIX):
        from .plugin.body import body_command

        return body_command(spec, python, job, result)
    if spec.target:
        from .child import TARGET_ENTRY
        from .spec import write_json_atomic

        if not os.access(python, os.X_OK):
            raise FileNotFoundError(f"--python {python}: not an executable interpreter")
        write_json_atomic(job, {"spec": spec.to_dict(), "workdir": str(cell_dir)})
        return [python, str(TARGET_ENTRY), str(job), result], None
    from .models import materialize
    from .worker import write_job

    model_path, feeds_path = materialize(spec.model, spec.model_options, workdir / "models", spec.seed)
    write_job(job, spec, str(model_path), str(feeds_path), str(cell_dir))
    return [python, "-m", "stress_tests.worker", str(job), result], None


def _spawn(spec: CellSpec, env: dict[str, str], cell_dir: Path, command: list[str], cwd: str | None,
           on_progress: Progress | None) -> CellResult:
    result_path = cell_dir / "result.json"
    oom_before = _oom_kills()
    with open(cell_dir / "stdout", "wb") as out, open(cell_dir / "stderr", "wb") as err:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        timed_out = _wait(proc, spec, journal_path(result_path), on_progress)
    stderr = _tail(cell_dir / "stderr")
    rc = proc.returncode
    if not timed_out and rc == 0 and result_path.exists():
        try:
            result = CellResult.from_dict(_load(result_path))
            result.exit_code, result.stderr_tail = 0, (result.stderr_tail or stderr)
            return result
        except (ValueError, KeyError, TypeError) as e:
            return _from_journal(spec, result_path, "failed", f"unreadable result file: {e}", rc, None, stderr)
    if timed_out:
        return _from_journal(spec, result_path, "timeout", f"no result after {spec.timeout:g} s; process group killed",
                             rc, None, stderr)
    from .crashes import explain

    if rc < 0:
        name = _signal_name(-rc)
        reason = f"killed by {name}"
        if -rc == signal.SIGKILL:
            reason += _oom_evidence(oom_before)
        result = _from_journal(spec, result_path, "crashed", reason, rc, name, stderr)
    else:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no stderr"
        result = _from_journal(spec, result_path, "crashed", f"exited with code {rc}: {last}", rc, None, stderr)
    # faulthandler's traceback pushes libc's one line out of the tail: look further back for it
    result.reason += explain(spec.runtime, spec.allocator, _tail(cell_dir / "stderr", lines=400))
    return result


def _wait(proc: subprocess.Popen, spec: CellSpec, journal: Path, on_progress: Progress | None) -> bool:
    """Wait for the child, reporting progress; kill its process group at the timeout. True if timed out."""
    deadline = time.monotonic() + spec.timeout
    seen = -1
    while True:
        try:
            proc.wait(timeout=0.2)
            return False
        except subprocess.TimeoutExpired:
            pass
        if on_progress is not None:
            done = _count_samples(journal)
            if done != seen:
                seen = done
                on_progress(spec, done, spec.total_iterations)
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True


def _count_samples(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b'"kind":"sample"')
    except OSError:
        return 0


def _from_journal(spec: CellSpec, result_path: Path, status: str, reason: str, rc: int | None,
                  sig: str | None, stderr: str) -> CellResult:
    p = read_journal(journal_path(result_path))
    if p.last_stage and not p.series.get(p.fields[0] if p.fields else "", []):
        reason += f" (during stage {p.last_stage})"
    elif p.series:
        reason += f" after {max(len(v) for v in p.series.values())} iteration(s)"
    return CellResult(spec, status, reason=reason, series=p.series, latency=p.latency, stages=p.stages,
                      applied=Applied(**p.applied) if p.applied else None, probe=p.probe,
                      memory_stats=dict(p.info.get("memory_stats", {})), exit_code=rc, signal=sig,
                      stderr_tail=stderr, notes=p.notes)


#: Allocators whose heap counter covers part of the process (mimalloc 2.0: the main thread's heap,
#: ``heap.mimalloc_counter``): a flat figure there cannot prove RSS growth is only retention.
PARTIAL_HEAP = frozenset({"mimalloc"})


def finish(result: CellResult) -> CellResult:
    """Add the leak verdicts (in the parent: the analysis never runs inside a measured child)."""
    if result.status != "ok" or not result.series or not result.spec.pipeline or result.iterations_done == 0:
        return result
    try:
        from .analysis import LeakConfig, analyze_samples, format_value, overall
    except ImportError as e:
        result.notes.append(f"no verdict: the leak analysis is unavailable ({e})")
        return result
    from .spec import ANALYZED

    # IterPeak (each iteration's own peak) is judged beside the running peak VmHWM: see ``overall``.
    series = {k: [v for v in result.series[k] if v is not None] for k in (*ANALYZED, "IterPeak")
              if result.series.get(k)}
    series = {k: v for k, v in series.items() if len(v) == result.iterations_done}
    if not series:
        result.notes.append("no verdict: no analysable series")
        return result
    verdicts = analyze_samples(series, warmup=result.spec.warmup, config=LeakConfig())
    result.verdicts = {k: v.to_dict() for k, v in verdicts.items()}
    result.verdict = overall(verdicts)
    if result.verdict == "leak":
        result.status = "leak"
        grown = [f"{k} {format_value(k, v.slope, signed=True)}/iteration" for k, v in verdicts.items()
                 if v.verdict == "leak"]
        result.reason = "memory grows: " + ", ".join(grown)
    elif result.verdict == "retention" and (result.probe.get("heap") or {}).get("allocator") in PARTIAL_HEAP:
        # The counter sees one thread's heap: RSS growing over it may be another thread's leak.
        result.verdict = "inconclusive"
        result.notes.append("RSS grows while the main thread's heap is flat, and this allocator's counter sees "
                            "no other thread's heap: a leak in another thread and retention look alike here "
                            "(judge it under glibc, jemalloc or tcmalloc, whose counters are process-wide)")
    elif result.verdict == "retention":
        grown = [f"{k} {format_size(v.slope, signed=True)}/iteration" for k, v in verdicts.items()
                 if v.verdict == "leak"]
        result.notes.append(f"retention: {', '.join(grown)} while the allocator's live heap is flat: the allocator "
                            f"keeps memory the program freed (not a leak of the program; gated by the baselines' "
                            f"RSS figures)")
    return result


def run_cells(specs: Sequence[CellSpec], *, jobs: int = 1, workdir: Path | None = None,
              require_allocators: bool = False, on_start: Callable[[CellSpec], None] | None = None,
              on_done: Callable[[CellResult], None] | None = None, on_progress: Progress | None = None,
              cwd: str | Path | None = None) -> list[CellResult]:
    """Run many cells, ``jobs`` at a time; results come back in the order of ``specs``."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="memgate-")))
        _prepare_models(specs, workdir)

        def one(spec: CellSpec) -> CellResult:
            if on_start is not None:
                on_start(spec)
            result = run_cell(spec, workdir=workdir, require_allocators=require_allocators, on_progress=on_progress,
                              cwd=cwd)
            if on_done is not None:
                on_done(result)
            return result

        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="cell") as pool:
            return list(pool.map(one, specs))


def _prepare_models(specs: Sequence[CellSpec], workdir: Path) -> None:
    """Write each distinct model once, before cells run in parallel and would race to write it."""
    from .models import materialize

    for key in dict.fromkeys((s.model, s.model_options, s.seed) for s in specs if not s.target):
        with contextlib.suppress(Exception):  # the cell itself reports the failure
            materialize(key[0], key[1], workdir / "models", key[2])


def _load(path: Path) -> dict:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def _tail(path: Path, lines: int = STDERR_TAIL) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _complaints(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith(_COMPLAINTS)]


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _oom_kills() -> int | None:
    """The cgroup's OOM-kill counter (cgroup v2), where readable."""
    for path in ("/sys/fs/cgroup/memory.events", *_own_cgroup_events()):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(path).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    return None


def _own_cgroup_events() -> list[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return [f"/sys/fs/cgroup{line[3:].strip()}/memory.events"]
    return []


def _oom_evidence(before: int | None) -> str:
    after = _oom_kills()
    if before is not None and after is not None and after > before:
        return f": the kernel's OOM killer (cgroup oom_kill count {before} -> {after})"
    return ": likely the kernel's OOM killer or an outside kill (no cgroup OOM evidence)"
