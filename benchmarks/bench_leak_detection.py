"""Power and false-positive rate of ``stress_tests.analysis`` (a script run by hand, never by the test suite).

Part 1 (always): seeded synthetic series shaped like the real ones the harness records (below).
Part 2 (``--real``): real cells through the runner, with the self-test leak injection, per allocator.

    python benchmarks/bench_leak_detection.py --reps 400 --out bench_leak.md            # ~13 min on 2 cores
    python benchmarks/bench_leak_detection.py --no-synthetic --real --real-reps 4 --out bench_leak_real.md
    python benchmarks/bench_leak_detection.py --no-synthetic --real --allocators jemalloc --real-iterations 300

A cell's detection rate is the share of repetitions whose verdict (``overall`` of VmRSS/RssAnon/VmHWM
for part 2, the RssAnon-like series alone for part 1) is ``leak``; the 0 KiB column is the false-positive
rate.  The shares of ``inconclusive`` are printed too: a run that cannot tell is not a miss in disguise.
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


def table(rates: dict[tuple[int, int], tuple[float, float]], title: str, leaks: Sequence[int] = LEAKS_KIB) -> str:
    """Markdown: rows = iterations, columns = leak per iteration; cells 'leak% (inconclusive%)'."""
    head = "| iterations | " + " | ".join("0 (FPR)" if k == 0 else f"{k} KiB" for k in leaks) + " |"
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


def real_tables(reps: int, iterations: Sequence[int], leaks: Sequence[int], cfg: LeakConfig, jobs: int,
                pipeline: str = "recompile", model: str = "mlp", only: Sequence[str] = ()) -> str:
    """Part 2: the runner's cells with ``inject_leak_bytes`` under every installed allocator, ``reps`` each.

    The verdict is ``overall`` over VmRSS, VmHWM and RssAnon, as the runner gives it.  The injected
    leak is a touched bytearray kept per iteration: below glibc's mmap threshold it comes from the heap,
    where freed memory can absorb it for a while (the module docstring's blind spot).
    """
    from stress_tests import allocators  # imported here so that part 1 needs nothing but the analysis
    from stress_tests.analysis import analyze_samples, overall
    from stress_tests.runner import run_cells
    from stress_tests.spec import ANALYZED, CellSpec

    names = [f.name for f in allocators.discover() if f.installed and (not only or f.name in only)]
    specs = [CellSpec(pipeline=pipeline, model=model, allocator=a, iterations=n, inject_leak_bytes=k * 1024,
                      timeout=1800.0)
             for a in names for n in iterations for k in leaks for _ in range(reps)]

    def tick(r: object) -> None:
        print(".", end="", file=sys.stderr, flush=True)

    results = run_cells(specs, jobs=jobs, on_done=tick)
    print(file=sys.stderr)
    out = []
    for a in names:
        cells: dict[tuple[int, int], list[str]] = {}
        failed = 0
        for r in results:
            if r.spec.allocator != a:
                continue
            series = {m: r.series[m] for m in ANALYZED if r.series.get(m)}
            if r.status not in ("ok", "leak") or not series:
                failed += 1
                continue
            v = overall(analyze_samples(series, warmup=r.spec.warmup, config=cfg))
            cells.setdefault((r.spec.iterations, r.spec.inject_leak_bytes // 1024), []).append(v)
        rates = _rates(cells)
        title = f"Real runs, {a}: `{pipeline}` on `{model}`, {reps} runs per cell" + (
            f" ({failed} failed cells left out)" if failed else "")
        out.append(table(rates, title, leaks))
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
    ap.add_argument("--out", type=Path, help="also write the Markdown tables to this file")
    args = ap.parse_args(argv)
    cfg = LeakConfig()
    parts = []
    if not args.no_synthetic:
        parts.append(synthetic_tables(args.reps, cfg, args.jobs, args.leaks))
        print(parts[-1], flush=True)
    if args.real:
        parts.append(real_tables(args.real_reps, args.real_iterations, args.leaks, cfg, args.jobs, args.pipeline,
                                 only=args.allocators))
        print(parts[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
