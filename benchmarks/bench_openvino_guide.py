"""OpenVINO's memory guide reproduced on OpenVINO itself, beside memgate's runtime and onnxruntime.

Every figure comes from a fresh child of the harness's own runner (``memgate matrix --json``):

- ``recompile``: VmRSS after each of 30 recompilations (memgate's ``recompile`` pipeline: compile,
  request, infer, release on one Core) under glibc with default tunables, ``arena_max=1``,
  ``trim_threshold=131072`` (a fixed threshold, which also stops glibc raising it dynamically),
  ``malloc_trim(0)`` after each, and under jemalloc, tcmalloc, mimalloc.
- ``mmap``: RssAnon and RssFile (VmRSS - RssAnon) after read and compile, enable_mmap on and off, on
  a zoo model saved with external data (``memcheck`` pipeline).
- ``threads``: compile time and compile peak (above the stage's start) against compile_threads 1, 2, 4
  (median of ``--repeat`` fresh children).
- ``rule``: OpenVINO's memleaks rule (tests/stress_tests/memleaks_tests: the average of each 5
  iterations, reference at iteration 30, an outlier when the average is more than 10% of the
  reference above it, re-referenced up to 3 times, fail above 5 outliers on VmRSS or VmHWM) and
  memgate's verdict on the same series, with 0, 16 and 64 KiB injected per iteration: which says
  leak, and after how many iterations first.

    python benchmarks/bench_openvino_guide.py --out bench_openvino.md                 # ~30 min on 2 cores
    python benchmarks/bench_openvino_guide.py --parts rule --rule-iterations 330 --models light:squeezenet
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stress_tests.analysis import analyze_samples, overall  # noqa: E402
from stress_tests.spec import CellResult  # noqa: E402

MiB = 2**20
SETUPS: dict[str, list[str]] = {
    "glibc default": ["--allocator", "glibc"],
    "glibc arena_max=1": ["--allocator", "glibc", "--tunable", "arena_max=1"],
    "glibc trim_threshold=128K": ["--allocator", "glibc", "--tunable", "trim_threshold=131072"],
    "glibc + malloc_trim": ["--allocator", "glibc", "--trim"],
    "jemalloc": ["--allocator", "jemalloc"],
    "tcmalloc": ["--allocator", "tcmalloc"],
    "mimalloc": ["--allocator", "mimalloc"],
}
PARTS = ("recompile", "mmap", "threads", "rule")


def matrix(args: Sequence[str], workdir: Path, keep: Path | None = None) -> list[CellResult]:
    """Run ``memgate matrix`` from this checkout; its cells (one fresh child each); ``keep``: copy the
    results file there (to recompute the tables without rerunning)."""
    from stress_tests.results import read_results

    with tempfile.NamedTemporaryFile(suffix=".json", dir=workdir, delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, "-m", "stress_tests.cli", "matrix", *args, "--workdir", str(workdir / "cells"),
           "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if not out.exists() or out.stat().st_size == 0:
        raise SystemExit(f"{' '.join(cmd)} wrote no results (exit {done.returncode}):\n{done.stderr[-2000:]}")
    cells = list(read_results(out).cells)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        out.replace(keep / f"{len(list(keep.glob('*.json'))):03d}.json")
    else:
        out.unlink()
    for c in cells:
        if c.status not in ("ok", "leak"):
            print(f"  {c.spec.id}: {c.status} {c.reason}", file=sys.stderr)
    return cells


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MiB:.1f}"


def stable_from(rss: Sequence[int], band: int = MiB) -> int | None:
    """The first iteration (1-based) from which VmRSS stays within ``band`` of its last value."""
    if not rss:
        return None
    last = rss[-1]
    i = len(rss)
    while i > 0 and abs(rss[i - 1] - last) <= band:
        i -= 1
    return i + 1


# ----------------------------------------------------------------------------- part 1: recompile
def part_recompile(args: argparse.Namespace, work: Path) -> str:
    lines = [f"### VmRSS after each of {args.iterations} recompilations (MiB)", "",
             "| runtime | model | setup | after 1 | after 10 | after 20 | after 30 | max | stable from | memgate |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    rows: dict[tuple[str, str, str], CellResult] = {}
    for setup, flags in SETUPS.items():
        print(f"recompile: {setup}", file=sys.stderr)
        cells = matrix(["--pipeline", "recompile", "--model", ",".join(args.models), "--runtime",
                        ",".join(args.runtimes), "--iterations", str(args.iterations), *flags], work)
        for c in cells:
            rows[(c.spec.runtime, c.spec.model, setup)] = c
    for runtime in args.runtimes:
        for model in args.models:
            for setup in SETUPS:
                c = rows.get((runtime, model, setup))
                if c is None:
                    continue
                rss = [v for v in c.series.get("VmRSS", []) if v is not None]
                if c.status not in ("ok", "leak") or not rss:
                    lines.append(f"| {runtime} | {model} | {setup} | {c.status}: {c.reason[:80]} |||||||")
                    continue
                at = [mib(rss[i - 1]) if len(rss) >= i else "" for i in (1, 10, 20, 30)]
                lines.append(f"| {runtime} | {model} | {setup} | {' | '.join(at)} | {mib(max(rss))} | "
                             f"{stable_from(rss)} | {c.verdict or c.status} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- part 2: mmap
def _stage(c: CellResult, name: str) -> Any:
    return next((s for s in c.stages if s.stage == name), None)


def part_mmap(args: argparse.Namespace, work: Path) -> str:
    lines = [f"### enable_mmap on {args.mmap_model} (weights as external data): after read and compile (MiB)", "",
             "| runtime | enable_mmap | RssAnon after read | RssFile after read | RssAnon after compile | "
             "RssFile after compile | compile peak above start |", "|---|---|---:|---:|---:|---:|---:|"]
    for mmap in (True, False):
        print(f"mmap: {mmap}", file=sys.stderr)
        cells = matrix(["--pipeline", "memcheck", "--model", args.mmap_model, "--runtime", ",".join(args.runtimes),
                        "--iterations", "1", *([] if mmap else ["--no-mmap"])], work)
        for c in cells:
            read, comp = _stage(c, "read_model"), _stage(c, "compile")
            if c.status != "ok" or read is None or comp is None:
                lines.append(f"| {c.spec.runtime} | {'on' if mmap else 'off'} | {c.status}: {c.reason[:80]} |||||")
                continue
            file_read = read.rss_after - read.anon_after
            file_comp = comp.rss_after - comp.anon_after
            lines.append(f"| {c.spec.runtime} | {'on' if mmap else 'off'} | {mib(read.anon_after)} | {mib(file_read)} "
                         f"| {mib(comp.anon_after)} | {mib(file_comp)} | {mib(comp.peak_delta)} |")
    lines.append("")
    lines.append("onnxruntime has no enable_mmap switch here (the flag does not reach it): both rows are its default.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- part 3: threads
def part_threads(args: argparse.Namespace, work: Path) -> str:
    runtimes = [r for r in args.runtimes if r != "onnxruntime"]
    lines = [f"### compile time and peak against compile_threads on {args.threads_model} "
             f"(median of {args.repeat} fresh children)", "",
             "| runtime | compile_threads | compile s | compile peak above start (MiB) | note |",
             "|---|---:|---:|---:|---|"]
    for threads in (1, 2, 4):
        print(f"threads: {threads}", file=sys.stderr)
        runs: dict[str, list[CellResult]] = {}
        for _ in range(args.repeat):
            for c in matrix(["--pipeline", "memcheck", "--model", args.threads_model, "--runtime", ",".join(runtimes),
                             "--iterations", "1", "--compile-threads", str(threads)], work):
                runs.setdefault(c.spec.runtime, []).append(c)
        for runtime, cells in runs.items():
            stages = [s for s in (_stage(c, "compile") for c in cells if c.status == "ok") if s is not None]
            if not stages:
                lines.append(f"| {runtime} | {threads} | {cells[0].status}: {cells[0].reason[:80]} |||")
                continue
            note = next((n for c in cells for n in c.notes if "compile_threads" in n), "")
            seconds = statistics.median(s.seconds for s in stages)
            peak = statistics.median(s.peak_delta or 0 for s in stages)
            lines.append(f"| {runtime} | {threads} | {seconds:.3f} | {mib(peak)} | {note} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- part 4: the rules
WARMUP_STEPS, AVERAGE_NUM, MAX_OUTLIERS, MAX_RETRY, THRESHOLD = 30, 5, 5, 3, 0.1


def openvino_rule(rss: Sequence[float], hwm: Sequence[float], n: int) -> tuple[bool | None, int, int, int]:
    """OpenVINO's memleaks decision for ``n`` measured iterations: (failed, outliers, retries, iterations used).

    ``failed`` is None when the series ends before the rule does (each re-reference restarts its
    count of ``n / 5`` windows, so a growing series needs up to ``30 + 4 n`` iterations). The loop
    it mirrors: every 5 iterations the average of the last 5; from iteration 30 on, the first such
    average is the reference and ``0.1 * reference`` the allowed rise; each later window above it is
    an outlier; more than 5 outliers re-reference (up to 3 times); after ``n / 5`` windows, more
    than 5 outliers on VmRSS or VmHWM fail.
    """
    ref: list[float] | None = None
    retry, measure = 0, n // AVERAGE_NUM
    outliers = [0, 0]
    iteration = 0
    while True:
        iteration += 1
        if iteration > len(rss):
            return None, max(outliers), max(0, retry - 1), len(rss)
        if iteration % AVERAGE_NUM or iteration < WARMUP_STEPS:
            continue
        window = [statistics.fmean(s[iteration - AVERAGE_NUM:iteration]) for s in (rss, hwm)]
        if ref is None or (retry <= MAX_RETRY and max(outliers) > MAX_OUTLIERS):
            retry += 1
            measure = n // AVERAGE_NUM
            outliers = [0, 0]
            ref = window
        elif measure <= 0:
            break
        measure -= 1
        for k in (0, 1):
            if window[k] - ref[k] > THRESHOLD * ref[k]:
                outliers[k] += 1
    return max(outliers) > MAX_OUTLIERS, max(outliers), retry - 1, iteration  # the last ran, then it stopped


def memgate_verdict(c: CellResult, total: int) -> str:
    series = {k: [float(v) for v in c.series[k][:total] if v is not None] for k in ("VmRSS", "VmHWM", "RssAnon")
              if c.series.get(k)}
    return overall(analyze_samples(series))


def settled_leak(c: CellResult, start: int = 10, step: int = 5) -> int | None:
    """The fewest iterations from which memgate says leak on every longer prefix (a multiple of ``step``)."""
    first = None
    for total in range(start, len(c.series["VmRSS"]) + 1, step):
        if memgate_verdict(c, total) == "leak":
            first = total if first is None else first
        else:
            first = None
    return first


def part_rule(args: argparse.Namespace, work: Path) -> str:
    ns = [n for n in (30, 100, 200, 300) if WARMUP_STEPS + n <= args.rule_iterations]
    lines = [f"### OpenVINO's memleaks rule against memgate's verdict ({args.rule_pipeline}, injected leaks)", "",
             "OV n: OpenVINO's rule with n measured iterations after its 30 warm-up ones (30 is its precommit "
             "setting): pass/FAIL, outliers, re-references, iterations it consumed ('unfinished' where the "
             f"{args.rule_iterations}-iteration series ended first). memgate: its verdict on the same iterations. "
             "Settled: the fewest iterations from which memgate says leak on every longer prefix.", "",
             "| runtime | model | leak/it | VmRSS at 30 (MiB) | " + " | ".join(f"OV n={n} | memgate" for n in ns)
             + " | memgate settled on leak at |",
             "|---|---|---:|---:|" + "---|---|" * len(ns) + "---:|"]
    for leak in args.leaks:
        print(f"rule: leak {leak}", file=sys.stderr)
        cells = matrix(["--pipeline", args.rule_pipeline, "--model", ",".join(args.rule_models),
                        "--runtime", ",".join(args.runtimes), "--iterations", str(args.rule_iterations),
                        "--inject-leak", leak], work, keep=args.keep)
        for c in cells:
            if c.status not in ("ok", "leak"):
                lines.append(f"| {c.spec.runtime} | {c.spec.model} | {leak} | {c.status}: {c.reason[:80]} |")
                continue
            rss = [float(v or 0) for v in c.series["VmRSS"]]
            hwm = [float(v or 0) for v in c.series["VmHWM"]]
            cols = []
            for n in ns:
                failed, out, retries, used = openvino_rule(rss, hwm, n)
                text = "unfinished" if failed is None else ("FAIL" if failed else "pass")
                cols += [f"{text} {out}o {retries}r @{used}", memgate_verdict(c, used)]
            settled = settled_leak(c)
            lines.append(f"| {c.spec.runtime} | {c.spec.model} | {leak} | {mib(rss[29] if len(rss) >= 30 else None)} "
                         f"| " + " | ".join(cols) + f" | {settled or 'never'} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    p.add_argument("--runtimes", default="builtin,onnxruntime,openvino")
    p.add_argument("--models", default="u2netp,light:squeezenet", help="models of the recompile part")
    p.add_argument("--iterations", type=int, default=30, help="recompilations per cell")
    p.add_argument("--mmap-model", default="u2net")
    p.add_argument("--threads-model", default="u2netp")
    p.add_argument("--repeat", type=int, default=3, help="fresh children per compile-threads figure")
    p.add_argument("--rule-pipeline", default="infer_request_inference")
    p.add_argument("--rule-models", default="mlp,light:squeezenet")
    p.add_argument("--rule-iterations", type=int, default=830, help="30 + 4 n lets the n=200 rule finish")
    p.add_argument("--leaks", default="0,16KiB,64KiB")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    p.add_argument("--keep", type=Path, default=None, help="keep the rule part's results files here")
    args = p.parse_args(argv)
    args.runtimes = args.runtimes.split(",")
    args.models = args.models.split(",")
    args.rule_models = args.rule_models.split(",")
    args.leaks = args.leaks.split(",")
    parts = args.parts.split(",")
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"unknown part(s) {bad}; choose from {PARTS}")
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-ov-") as tmp:
        work = Path(tmp)
        for part in parts:
            text = globals()[f"part_{part}"](args, work)
            print(text + "\n", flush=True)
            out.append(text)
    if args.out:
        args.out.write_text("\n\n".join(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
