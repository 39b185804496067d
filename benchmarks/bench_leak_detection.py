"""Power and false-positive rate of ``stress_tests.analysis`` (a script run by hand, never by the test suite).

Part 1 (always): seeded synthetic series shaped like the real ones the harness records (below).
Part 2 (``--real``): real cells through the runner, with the self-test leak injection, per allocator.

    python benchmarks/bench_leak_detection.py --reps 400 --out bench_leak.md            # ~13 min on 2 cores
    python benchmarks/bench_leak_detection.py --no-synthetic --real --real-reps 4 --out bench_leak_real.md
    python benchmarks/bench_leak_detection.py --no-synthetic --real --allocators jemalloc --real-iterations 300
    python benchmarks/bench_leak_detection.py --no-synthetic --real --real-reps 20 --real-iterations 30 100 300 \
        --leaks-bytes 0 256 1024 4096 16384 65536 --keep results.json     # the heap grid (README)
    python benchmarks/bench_leak_detection.py --from-results results.json   # re-judge kept runs, no new cells

A cell's detection rate is the share of repetitions whose verdict is ``leak``; the 0 column is the
false-positive rate.  Part 2 judges every run twice: **RSS-based** (``overall`` of VmRSS/RssAnon/VmHWM,
as before the heap counters) and **heap-based** (``overall`` with HeapLive and PyBlocks deciding, as
the runner does now; ``retention`` is not a leak).  The shares of ``inconclusive`` are printed too: a
run that cannot tell is not a miss in disguise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stress_tests.analysis import LeakConfig, analyze_series  # noqa: E402

PAGE = 4096
MiB = 2**20
ITERATIONS = (100, 300, 1000)
LEAKS_KIB = (0, 4, 16, 64, 256)
PROFILES = ("quiet", "trim", "noisy")


def synthetic(n: int, leak: float, rng: np.random.Generator, profile: str) -> np.ndarray:
    """One RssAnon-like series (bytes) of ``n`` iterations leaking ``leak`` bytes per iteration.

    Shapes copied from 1000-iteration recompile/reinfer runs of an MLP under glibc, jemalloc, tcmalloc
    and mimalloc: a step-like warm-up of 2-12 MiB, mostly within the first 30 iterations; page creep (a page
    every ~40 iterations); "quiet" (glibc/tcmalloc reinfer: little else), "trim" (glibc recompile: the
    heap is trimmed and regrown, 1-10 MiB level changes that persist for hundreds of iterations), "noisy"
    (mimalloc recompile: MiB-sized jumps every iteration on a level that drifts, sd ~2 MiB).
    Any profile may get a one-time allocation (an upward step at a random time) and a purge (a
    downward step). Everything is quantized to 4 KiB pages.  Leaks are not absorbed by free memory
    here (real allocators do absorb them; part 2 shows it).
    """
    t = np.arange(n)
    y = np.full(n, 100 * MiB + rng.integers(-8, 9) * MiB, dtype=float)
    tau = rng.uniform(1, 8)  # warm-up: steps whose sizes decay with time (real runs settle in 10-50 iterations)
    for at in np.sort(rng.exponential(tau, rng.integers(3, 9))).astype(int):
        y[at:] += rng.uniform(0.2, 2.5) * MiB * np.exp(-at / (4 * tau))
    y += np.cumsum(rng.random(n) < 1 / 40) * PAGE  # page creep
    jitter = (rng.random(n) < 0.05) * rng.integers(-2, 3, n) * PAGE  # transient, reverts next iteration
    y += jitter
    if profile == "trim":
        state, depth, level = 0, rng.uniform(1, 10) * MiB, np.zeros(n)
        for i in range(n):
            if rng.random() < 1 / 200:
                state ^= 1
            level[i] = -depth * state
        y += level
    elif profile == "noisy":
        slow = np.zeros(n)
        for i in range(1, n):
            slow[i] = 0.99 * slow[i - 1] + rng.normal(0, 0.18 * MiB)
        y += rng.integers(0, 5, n) * MiB + slow
    if rng.random() < 0.3:  # one-time allocation (a lazily built cache)
        y[rng.integers(n):] += rng.uniform(0.0625, 4) * MiB
    if rng.random() < 0.3:  # purge (jemalloc/mimalloc decay, glibc trim)
        y[rng.integers(n):] -= rng.uniform(1, 12) * MiB
    y += np.floor(leak * (t + 1) / PAGE) * PAGE
    return np.floor(y / PAGE) * PAGE


def _one(args: tuple[int, int, int, str, LeakConfig]) -> str:
    n, leak_kib, seed, profile, cfg = args
    rng = np.random.default_rng([n, leak_kib, seed, PROFILES.index(profile)])
    return analyze_series(list(synthetic(n, leak_kib * 1024.0, rng, profile)), "RssAnon", config=cfg).verdict


def table(rates: dict[tuple[int, int], tuple[float, float]], title: str, leaks: Sequence[int] = LEAKS_KIB,
          in_bytes: bool = False) -> str:
    """Markdown: rows = iterations, columns = leak per iteration; cells 'leak% (inconclusive%)'."""
    from stress_tests.units import format_size

    def name(k: int) -> str:
        return "0 (FPR)" if k == 0 else format_size(k).replace(".0 ", " ") if in_bytes else f"{k} KiB"

    head = "| iterations | " + " | ".join(name(k) for k in leaks) + " |"
    lines = [f"**{title}**: share called `leak` (share `inconclusive`)", "", head, "|" + "---|" * (len(leaks) + 1)]
    for n in sorted({n for n, _ in rates}):
        cells = [f"{100 * rates[n, k][0]:.1f}% ({100 * rates[n, k][1]:.0f}%)" if (n, k) in rates else "-"
                 for k in leaks]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rates(verdicts: dict[tuple[int, int], list[str]]) -> dict[tuple[int, int], tuple[float, float]]:
    return {key: (vs.count("leak") / len(vs), vs.count("inconclusive") / len(vs)) for key, vs in verdicts.items()}


def synthetic_tables(reps: int, cfg: LeakConfig, jobs: int, leaks: Sequence[int] = LEAKS_KIB) -> str:
    """Part 1: one table per noise profile (``reps`` series per cell), then all profiles together."""
    tasks = [(n, k, s, p, cfg) for p in PROFILES for n in ITERATIONS for k in leaks for s in range(reps)]
    with ProcessPoolExecutor(jobs) as pool:
        verdicts = list(pool.map(_one, tasks, chunksize=16))
    per: dict[str, dict[tuple[int, int], list[str]]] = {p: {} for p in (*PROFILES, "all")}
    for (n, k, _, p, _), v in zip(tasks, verdicts):
        per[p].setdefault((n, k), []).append(v)
        per["all"].setdefault((n, k), []).append(v)
    return "\n".join(table(_rates(per[p]), f"Synthetic, profile {p}, {reps * (3 if p == 'all' else 1)} series per cell",
                           leaks) for p in per)


RSS_SERIES = ("VmRSS", "VmHWM", "RssAnon")
HEAP_SERIES = ("VmRSS", "VmHWM", "RssAnon", "HeapLive", "PyBlocks")


def real_cells(reps: int, iterations: Sequence[int], leaks: Sequence[int], jobs: int, pipeline: str = "recompile",
               model: str = "mlp", only: Sequence[str] = (), python_malloc: bool = False) -> list:
    """Part 2's runs: the runner's cells with ``inject_leak_bytes`` (bytes) under every installed allocator."""
    from stress_tests import allocators  # imported here so that part 1 needs nothing but the analysis
    from stress_tests.runner import run_cells
    from stress_tests.spec import CellSpec

    names = [f.name for f in allocators.discover() if f.installed and (not only or f.name in only)]
    # Interleaved (every cell once, then again): a burst of load on the shared machine hits all cells alike.
    specs = [CellSpec(pipeline=pipeline, model=model, allocator=a, iterations=n, inject_leak_bytes=k, timeout=1800.0,
                      python_malloc=python_malloc)
             for _ in range(reps) for a in names for n in iterations for k in leaks]

    def tick(r: object) -> None:
        print(".", end="", file=sys.stderr, flush=True)

    results = run_cells(specs, jobs=jobs, on_done=tick)
    print(file=sys.stderr)
    return results


def real_tables(results: Sequence, leaks: Sequence[int], cfg: LeakConfig) -> str:
    """Part 2's tables: per allocator, the RSS-based and the heap-based verdicts of the same runs.

    The injected leak is a touched bytearray kept per iteration: its buffer comes from malloc from
    1 KiB on (the heap counter sees it at once, RSS only when the allocator's free memory runs out);
    256 B goes to pymalloc with the bytearray object (two blocks, which PyBlocks sees).
    """
    from stress_tests.analysis import analyze_samples, overall

    pipeline = results[0].spec.pipeline if results else "?"
    model = results[0].spec.model if results else "?"
    out = []
    for a in dict.fromkeys(r.spec.allocator for r in results):
        mine = [r for r in results if r.spec.allocator == a]
        failed = [r for r in mine if r.status not in ("ok", "leak")]
        for label, names in (("RSS-based", RSS_SERIES), ("heap-based", HEAP_SERIES)):
            cells: dict[tuple[int, int], list[str]] = {}
            for r in mine:
                series = {m: r.series[m] for m in names if r.series.get(m) and None not in r.series[m]}
                if r.status not in ("ok", "leak") or not series:
                    continue
                v = overall(analyze_samples(series, warmup=r.spec.warmup, config=cfg))
                cells.setdefault((r.spec.iterations, r.spec.inject_leak_bytes), []).append(v)
            runs = max((len(v) for v in cells.values()), default=0)
            pm = ", PYTHONMALLOC=malloc" if mine and mine[0].spec.python_malloc else ""
            title = f"Real runs, {a}{pm}, {label}: `{pipeline}` on `{model}`, {runs} runs per cell" + (
                f" ({len(failed)} failed cells left out)" if failed else "")
            out.append(table(_rates(cells), title, leaks, in_bytes=True))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400, help="synthetic series per profile and cell")
    ap.add_argument("--jobs", type=int, default=2, help="processes (part 1) and parallel cells (part 2)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip part 1")
    ap.add_argument("--real", action="store_true", help="run part 2: real cells through the runner")
    ap.add_argument("--real-reps", type=int, default=3, help="real runs per allocator and cell")
    ap.add_argument("--real-iterations", type=int, nargs="+", default=list(ITERATIONS))
    ap.add_argument("--pipeline", default="recompile", help="pipeline of the real cells")
    ap.add_argument("--allocators", nargs="+", default=[], help="real cells under these only (default: all installed)")
    ap.add_argument("--leaks", type=int, nargs="+", default=list(LEAKS_KIB), help="KiB per iteration")
    ap.add_argument("--leaks-bytes", type=int, nargs="+", default=None,
                    help="real cells: bytes per iteration (overrides --leaks, e.g. 0 256 1024)")
    ap.add_argument("--python-malloc", action="store_true", help="real cells under PYTHONMALLOC=malloc")
    ap.add_argument("--keep", type=Path, help="real cells: write their results file here (re-judge it later)")
    ap.add_argument("--from-results", type=Path, nargs="+", help="judge these results files instead of running")
    ap.add_argument("--out", type=Path, help="also write the Markdown tables to this file")
    args = ap.parse_args(argv)
    cfg = LeakConfig()
    parts = []
    if not args.no_synthetic:
        parts.append(synthetic_tables(args.reps, cfg, args.jobs, args.leaks))
        print(parts[-1], flush=True)
    leaks_bytes = args.leaks_bytes or [k * 1024 for k in args.leaks]
    if args.from_results:
        from stress_tests.results import read_results

        results = [c for p in args.from_results for c in read_results(p).cells]
        parts.append(real_tables(results, sorted({r.spec.inject_leak_bytes for r in results}), cfg))
        print(parts[-1], flush=True)
    elif args.real:
        results = real_cells(args.real_reps, args.real_iterations, leaks_bytes, args.jobs, args.pipeline,
                             only=args.allocators, python_malloc=args.python_malloc)
        if args.keep:
            from stress_tests.environment import fingerprint
            from stress_tests.results import write_results

            write_results(args.keep, results, fingerprint(), ["bench_leak_detection.py", *(argv or sys.argv[1:])])
        parts.append(real_tables(results, leaks_bytes, cfg))
        print(parts[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
