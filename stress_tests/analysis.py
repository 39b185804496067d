"""Leak statistics: per-iteration memory series -> ``leak`` / ``no-leak`` / ``inconclusive``; cells: ``retention``.

A series (bytes, one value per iteration) is judged in these steps:

1. **Warm-up.** Allocators grow RSS for a while before it settles (glibc's dynamic mmap threshold moves
   big blocks into the heap, arenas and size classes fill, jemalloc purges its startup pages).  The
   steady part starts at the ``w`` minimising MSER (White 1997) generalised to a linear steady state,
   ``SSE(OLS line on y[w:]) / (m (m - 2))`` with ``m = n - w`` and ``w <= max_warmup_fraction * n``: a
   leak is a line, so MSER keeps it whole; a ramp or step does not fit the line and is cut.  A caller's
   ``warmup=k`` is a lower bound: the same detector runs on ``y[k:]`` and may push it later (rules 6-7).
   Past ``max_points`` steady iterations, steps 2-3 run on that many block medians (Theil-Sen is O(m^2)).
2. **Trend.** Mann-Kendall one-sided test for an increasing trend = scipy's Kendall tau-b of the series
   against the index, asymptotic (its variance is tie-corrected: page-quantized series are full of
   ties), widened by the Hamed-Rao (1998) factor ``n/n*`` for autocorrelation, summed over Geyer's
   initial positive sequence of rank autocorrelations (``autocorrelation_factor``).
3. **Slope.** scipy's Theil-Sen slope with Sen's interval at two-sided level ``1 - 2 alpha`` widened by
   the same factor, so ``slope_high`` is a one-sided ``1 - alpha`` upper bound.
4. **Verdict.** ``floor = max(floor_bytes, floor_relative * level, min_growth_bytes / m)`` per iteration.
   ``leak`` if p < alpha, slope >= floor and ``slope * m >= noise_multiple * sigma`` (sigma: robust
   scale of the residuals); ``no-leak`` if slope_high < floor; otherwise ``inconclusive`` with
   ``needed_iterations = w + max(m_se, m_noise, m_ci, min_points, m + 1)``:
   ``m_se = (sqrt(12) sigma sqrt(f) (z_alpha + z_power) / floor) ** (2/3)`` is where the slope's standard
   error ``sqrt(12) sigma sqrt(f) / m**1.5`` falls to ``floor / (z_alpha + z_power)`` (a clean series
   then reads ``no-leak``, a leak of twice the floor ``leak``, each with probability ``power``);
   ``m_noise = noise_multiple * sigma / floor`` is where a leak at the floor outgrows the noise;
   ``m_ci = m (half_width / max(|slope - floor|, floor / 4)) ** (2/3)`` is where the interval, shrinking
   as ``m**-1.5``, leaves the floor at the current estimate.
5. **Jumps.** Changes between iterations far from the typical one (``jump_mads`` robust deviations, and
   at least ``min_growth_bytes``) are purges, trims and one-time allocations.  Their heights (medians
   of the plateaus either side, less the trend) are taken out and the rest is judged again; that
   verdict stands unless the jumps themselves climb to two or more new highs worth ``floor * m``
   (regrowth after a trim only restores a level): then more than ``max_jumps`` of them under a raw
   leak are a staircase (a leak stepping in big chunks, ``leak``) and fewer are ``inconclusive`` (run
   longer: a leak keeps stepping, warm-up stops).  Jumps past MSER's cap are taken out before step 1,
   which they would otherwise dominate.
6. **Growth that stopped.** A ``leak`` whose last half rules out a leak (and is not falling) is late
   warm-up: the last half's ``no-leak`` stands.  A real leak keeps the last half's upper bound above
   the floor with probability ``1 - alpha``, so this costs at most ``alpha`` of power.
7. **One step.** A ``leak`` that one upward step fits better than a line (sum of squared residuals) is
   a one-time allocation: the warm-up is pushed past the step and the rest is judged.
8. **One drop.** A ``no-leak`` that one downward step fits better than a line may be a purge tilting
   the line down over a leak: unless the part after the drop rules out a leak too, ``inconclusive``.
9. **Refill.** A ``leak`` whose end has not passed the highest level held (median of ``m/4``
   iterations) before its second half by half the growth a leak at the floor gives there, and whose
   series up to that level is no leak itself (rules 1-7), is what a purge released
   being touched again (jemalloc narenas:1 under 4 threads refilled 900 KiB over 250 iterations after
   200 flat ones): ``inconclusive`` until it passes that level.

False positives that shaped the rules (seen on 1000-iteration runs under all four allocators):
- one late 4 KiB page: Theil-Sen ignores it, and a leak must exceed ``min_growth_bytes`` (16 pages);
- page creep: CPython and numpy caches add a page every ~40 iterations (~100 B/iteration, p < 1e-9):
  a real but harmless trend, below the 1 KiB/iteration floor;
- glibc trims and jemalloc/mimalloc purges move RSS by 1-12 MiB at once: jumps (rule 5); a purge in
  the second half once turned a 16 KiB/iteration leak into "growth stopped", hence "not falling";
- warm-up steps of 0.5-3 MiB up to iteration ~60, and a lazily built cache mid-run: rules 5-7;
- mimalloc wanders: MiB-sized jumps every iteration on a level that drifts for hundreds of
  iterations (lag-50 autocorrelation 0.25).  Hamed-Rao sees little of it in 100-300 points, p-values
  of 1e-5 came from pure drift; only ``noise_multiple`` (3 robust sd of growth) kept it below 1%;
- mmap'd weights: file pages count in VmRSS as they are first touched; they are RssFile, never
  RssAnon, so ``overall`` decides on RssAnon;
- threads started every iteration: the process peak (VmHWM, IterPeak) creeps by up to ~125 KiB over
  40 iterations of clean code while the heap stays flat, so a leak of the peak must rise at least
  ``PEAK_MIN_GROWTH`` (256 KiB) over the steady part.
Blind spot of RSS: a leak the allocator absorbs in memory it already holds (freed heap, dirty pages)
does not move RSS until that memory runs out: 16 KiB/iteration bytearrays stayed invisible for 250-500
iterations under glibc and tcmalloc.  The heap series below see them at once.

**The heap series.** ``HeapLive`` is the allocator's own count of live bytes and ``PyBlocks`` Python's
count of pymalloc blocks (``stress_tests.heap``); where they were read, they decide (``overall``):
either leaking is a leak, both ruled out while RSS grows is ``retention``.  They are counts, not
pages: in clean cells (every pipeline on mlp, four allocators; 96 runs of 30 iterations, 96 of 100,
32 of 300) ``HeapLive`` was constant after warm-up but for one-time steps (576 KiB at iteration ~180
of recompile under jemalloc and mimalloc), and ``PyBlocks`` grew at most 1.05 blocks/iteration once
two runtime calls that left Python blocks behind were replaced (a per-call ``ndarray.ctypes``: 5-7.6
blocks/iteration in mode_switch; conv's ``as_strided(writeable=False)``: 1-4.3 in u2netp, mobilenetv2).  So:
no 16-page minimum (4 KiB over the run for ``HeapLive``, 64 blocks for ``PyBlocks``), floors of 256
B and 4 blocks per iteration, and of rules 5-9 only these, each for what was measured:

- rule 5 (jumps) for ``HeapLive``: without it 8 of 32 clean 100-iteration and 8 of 32 clean
  300-iteration cells read ``inconclusive`` on those one-time steps;
- rule 6 (growth that stopped) for ``PyBlocks``: without it a cache filling at 1.1 blocks/iteration
  (cached_recompile under mimalloc) read ``leak``;
- rules 7 (one step), 8 (one drop) and 9 (refill) changed no verdict of a clean or leaking heap
  series; 8 and 9 exist for purges and re-touched pages, which a count of bytes handed out has not.

No clean cell read ``leak`` on either series with these settings (``HEAP_CONFIG``, ``BLOCKS_CONFIG``).

Measured with the defaults (``benchmarks/bench_leak_detection.py --reps 400``, rules 1-9; 400 seeded
synthetic series per cell and profile, quantized to pages, with warm-up, page creep, one-time
allocations and purges):
- false positives: 0/400 in every cell of the quiet (glibc/tcmalloc-like) and trim (glibc recompile)
  profiles, 1-2/400 (0.2-0.5%) in the noisy (mimalloc-like, sd ~2 MiB, drifting) profile;
- minimum leak detected with >= 95% power (grid 4, 16, 64, 256 KiB/iteration):

  ==========  =====================  ===============  ==========================
  iterations  quiet (page jitter)    trim (glibc)     noisy (mimalloc recompile)
  ==========  =====================  ===============  ==========================
  100         4 KiB (95.5%)          16 KiB (95.0%)   256 KiB (98.5%)
  300         4 KiB (99.0%)          4 KiB (97.8%)    64 KiB (96.2%)
  1000        4 KiB (100%)           4 KiB (97.2%)    16 KiB (95.2%)
  ==========  =====================  ===============  ==========================

  A missed leak is almost always ``inconclusive`` (the shares add up to 99.5-100%), rarely
  ``no-leak``: rule 9 turns a leak under a purge larger than its growth so far into ``inconclusive``
  (it cost 0.5-7 points of power at 4 KiB against rules 1-8).  On noisy series most leak-free runs
  are ``inconclusive`` (94-99%): 1 KiB/iteration cannot be ruled out under 2 MiB of drift in 1000
  iterations, and ``needed_iterations`` says so.
- real cells (``--real --real-reps 4``: the self-test injection, ``recompile`` on ``mlp``): no false
  positive under any allocator; every injected leak (4-256 KiB/iteration) found at 100, 300 and 1000
  iterations under glibc, jemalloc, tcmalloc and mimalloc.  jemalloc reuses freed memory for most of
  a 4 KiB/iteration leak at first (RSS grows 1-2.5 KiB/iteration over iterations 50-100), right at the
  floor: at 100 iterations it was found in 0/4, 2/4, 8/8 and 4/4 runs in four sessions; from 300
  iterations on, always.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats

from .units import format_metric, format_size

Verdict = Literal["leak", "retention", "no-leak", "inconclusive"]
PAGE = 4096


@dataclass(frozen=True)
class LeakConfig:
    """Knobs of the leak decision; the defaults are the measured ones (module docstring)."""

    alpha: float = 0.01  # one-sided level of the trend test; the slope interval is two-sided 1 - 2 alpha
    floor_bytes: float = 1024.0  # smallest growth per iteration worth calling a leak
    floor_relative: float = 1e-6  # ... or this fraction of the steady level per iteration, if larger
    min_growth_bytes: float = 16 * PAGE  # total growth over the steady part a leak must exceed
    noise_multiple: float = 3.0  # ... and this many robust sd of the residuals (slow allocator drift)
    min_points: int = 10  # fewer steady points than this: inconclusive
    max_points: int = 1000  # longer steady parts are judged on this many block medians (Theil-Sen is O(m^2))
    max_warmup_fraction: float = 0.5  # MSER cuts at most this much (its statistic is unstable near the end)
    jump_mads: float = 5.0  # a jump deviates from the typical change by this many robust deviations
    max_jumps: int = 3  # this many upward jumps and nothing between them is too few to call a leak
    power: float = 0.95  # target power behind needed_iterations
    autocorrelation: bool = True  # Hamed-Rao correction of the trend variance
    # Rules 5-9 one by one: the heap series (an exact count, no pages, no purges) keeps only those
    # a measured false positive asks for (``HEAP_CONFIG``).
    jumps: bool = True  # rule 5
    growth_stopped: bool = True  # rule 6
    one_step: bool = True  # rule 7
    one_drop: bool = True  # rule 8
    refill: bool = True  # rule 9


@dataclass(frozen=True)
class SeriesVerdict:
    """The judgement of one metric's series; sizes in bytes, slopes in bytes per iteration."""

    metric: str
    verdict: Verdict
    n: int  # points used (the steady part); 0 when samples were missing
    warmup_end: int  # index where the steady part starts
    slope: float | None
    slope_low: float | None
    slope_high: float | None
    tau: float | None
    p_value: float | None
    total_growth: float | None  # slope * n
    needed_iterations: int | None  # when inconclusive: total iterations (warm-up included) likely to decide
    reason: str
    floor: float | None = None  # the practical floor the slope was held against
    noise: float | None = None  # robust sd of the residuals around the slope
    autocorrelation_factor: float | None = None  # Hamed-Rao variance inflation (1 = independent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeriesVerdict:
        """Inverse of ``to_dict``; unknown keys (from a newer writer) are ignored."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def analyze_series(values: Sequence[float | None], metric: str = "VmRSS", warmup: int | None = None,
                   config: LeakConfig = LeakConfig()) -> SeriesVerdict:
    """Judge one per-iteration series (bytes). ``warmup=None`` detects the warm-up; an int is a lower bound."""
    start = 0 if warmup is None else min(max(int(warmup), 0), len(values))
    missing = sum(v is None or not math.isfinite(v) for v in values)
    if missing:
        return SeriesVerdict(metric, "inconclusive", 0, start, None, None, None, None, None, None, None,
                             f"{missing} of {len(values)} samples missing (the probe has no such field here)")
    y = np.asarray(values, dtype=float)
    v = _verdict(y, start, metric, config)
    return _refill(y, start, v, config) if config.refill else v


def _verdict(y: np.ndarray, start: int, metric: str, config: LeakConfig) -> SeriesVerdict:
    """Rules 1-8 on a complete series."""
    # Jumps MSER cannot cut (past its cap) would dominate its cost and hide the warm-up: remove them first.
    jump, typical = _jumps(np.diff(y[start:]), config)
    late = np.flatnonzero(jump)
    late = late[late >= config.max_warmup_fraction * (len(y) - start)]
    w = start + _mser_linear(_without(y[start:], late, typical) if config.jumps else y[start:], config)
    raw = _steady_verdict(y, w, metric, config)
    if not config.jumps:
        return raw
    d = np.diff(y[w:])
    jump, typical = _jumps(d, config)
    if not jump.any():
        return raw
    at = np.flatnonzero(jump)
    steps = _heights(y[w:], at, typical)
    smooth = np.concatenate([y[:w], _without(y[w:], at, typical)])
    note = f"{int(jump.sum())} jump(s) set aside (purge, trim, one-time allocation); "
    between = _steady_verdict(smooth, w, metric, config, note)
    # Jumps to a new high: regrowth after a trim or purge only restores a level already seen.
    level = np.cumsum(steps)
    high = np.maximum.accumulate(np.concatenate([[0.0], level]))
    ups = at[level > high[:-1] + 0.5 * np.abs(steps)]
    net = float(high[-1])
    if between.verdict == "leak":
        return between
    if len(ups) < 2 or net < (raw.floor or 0.0) * raw.n:
        return between  # nothing grows between the jumps, and they are one step or restore old levels
    if raw.verdict == "leak" and len(ups) > config.max_jumps:
        return replace(raw, reason=f"grows in {len(ups)} jumps (a staircase): {raw.reason}")
    needed = w + 2 * raw.n
    where = ", ".join(f"{w + i + 1} ({format_value(metric, d[i], signed=True)})" for i in ups[:5])
    return replace(between, verdict="inconclusive", needed_iterations=needed,
                   reason=f"grows {format_value(metric, net)} in {len(ups)} jumps, at iteration {where}, and not "
                   f"between them; a leak keeps stepping, warm-up stops: about {needed} iterations needed "
                   f"({between.reason})")


#: The allocator's live bytes (``HeapLive``): an exact count, no pages, so no 16-page growth minimum
#: (4 KiB over the run suffices) and a floor of 256 B/iteration. Of rules 5-9 only the jumps (5)
#: stay: one-time allocations (576 KiB at iteration ~180 of recompile under jemalloc and mimalloc)
#: left 8 of 32 clean 100-iteration cells ``inconclusive`` without it. Rules 6 and 7 changed no
#: verdict of a clean or leaking heap series; 8 and 9 exist for purges and re-touched pages,
#: which a count of bytes handed out does not have (module docstring, "The heap series").
HEAP_CONFIG = LeakConfig(floor_bytes=256.0, min_growth_bytes=4096.0, growth_stopped=False, one_step=False,
                         one_drop=False, refill=False)
#: Python's pymalloc blocks (``PyBlocks``, a count of objects up to 512 bytes). Clean cells grow at
#: most 1.05 blocks/iteration (cached_recompile, 96 runs of 30 and 32 of 100 iterations), so the
#: floor is 4 blocks; a small-object leak of 1 KiB/iteration is at least 2 blocks of 512 B, typically
#: 10-20. Rule 6 stays: without it a cache filling at 1.1 blocks/iteration read ``leak``.
BLOCKS_CONFIG = LeakConfig(floor_bytes=4.0, floor_relative=0.0, min_growth_bytes=64.0, jumps=False,
                           one_step=False, one_drop=False, refill=False)
HEAP_METRICS = ("HeapLive", "PyBlocks")
#: A leak of the peak (VmHWM, IterPeak) must rise at least this much over the steady part. Threads
#: spawned every iteration move the process peak by up to ~125 KiB over 40 iterations of clean code
#: (threads/mobilenetv2, 4 threads: VmHWM +85 KiB in 1 of 30 runs here, +3.1 KiB/iteration read as a
#: leak in a tox env) while the exact heap counter stays flat; a transient growing 16 KiB/iteration
#: still clears it within 16 iterations.
PEAK_METRICS = ("VmHWM", "IterPeak")
PEAK_MIN_GROWTH = 256 * 1024.0



def analyze_samples(samples: Mapping[str, Sequence[float | None]], warmup: int | None = None,
                    config: LeakConfig = LeakConfig(), heap: LeakConfig = HEAP_CONFIG,
                    blocks: LeakConfig = BLOCKS_CONFIG) -> dict[str, SeriesVerdict]:
    """Judge every metric of a cell's samples separately: RSS series with ``config``, the heap's with its own.

    The peaks take ``config`` with its total-growth minimum raised to ``PEAK_MIN_GROWTH``.
    """
    peak = replace(config, min_growth_bytes=max(config.min_growth_bytes, PEAK_MIN_GROWTH))
    configs = {"HeapLive": heap, "PyBlocks": blocks, **{m: peak for m in PEAK_METRICS}}
    return {metric: analyze_series(values, metric, warmup, configs.get(metric, config))
            for metric, values in samples.items()}


def overall(verdicts: Mapping[str, SeriesVerdict]) -> Verdict:
    """The cell's verdict: the heap decides where it was counted; RSS otherwise.

    With ``HeapLive`` (and ``PyBlocks``, pymalloc's objects, which malloc never sees): a leak of
    either is a leak; both ruled out while RssAnon grows is ``retention``: the allocator keeps memory
    the program freed, not a leak of the program (measured: glibc with trim_threshold=1GiB under a
    temporary growing 64 KiB per iteration, RssAnon +64 KiB/iteration, heap +0). Both ruled out and
    RssAnon flat while VmHWM climbs: each iteration's transients peak higher, a leak of the peak.
    Without heap series: RssAnon decides (VmRSS where RssAnon is missing), and a rising VmHWM is a
    leak too.

    RssFile growth (mmap'd weights being touched) is not a leak, so VmRSS only decides without RssAnon.
    VmHWM is a running peak, flat once warm: a sustained rise means each iteration peaks higher than
    all before it, a leak of the peak even when the sampled RSS is trimmed back.  It can only add a
    leak: an inconclusive VmHWM (a flat line with a few jumps often is) leaves the cell's verdict alone.
    """
    deciding = next((v for name in ("RssAnon", "VmRSS") if (v := verdicts.get(name)) is not None and v.n > 0),
                    None)
    hwm = verdicts.get("VmHWM")
    rss_grows = deciding is not None and deciding.verdict == "leak"
    # VmHWM is the running maximum of the iterations' peaks: the maximum of stationary noise keeps
    # setting new records, so its trend alone is no evidence (threads/mlp under mimalloc read
    # +1.1 KiB/iteration on clean code, and an iteration's own peak, IterPeak, alone read +5.3 KiB
    # on a clean glibc run). A leak of the peak makes both rise: where IterPeak was judged, it must agree.
    own = verdicts.get("IterPeak")
    peak_grows = (hwm is not None and hwm.verdict == "leak"
                  and (own is None or own.n == 0 or own.verdict == "leak"))
    heap = [v for name in HEAP_METRICS if (v := verdicts.get(name)) is not None and v.n > 0]
    live = verdicts.get("HeapLive")
    if live is not None and live.n > 0:
        if any(v.verdict == "leak" for v in heap):
            return "leak"
        if any(v.verdict == "inconclusive" for v in heap):
            return "inconclusive"
        if rss_grows:
            return "retention"  # the running peak follows RSS up: it says nothing more
        # A peak that climbs while the sampled memory stays put is the program's transients growing.
        return "leak" if peak_grows else "no-leak"
    if rss_grows or peak_grows:
        return "leak"
    if deciding is None or deciding.verdict == "inconclusive":
        return "inconclusive"
    return "no-leak"


def format_value(metric: str, value: float | None, signed: bool = False) -> str:
    """Bytes as sizes; PyBlocks (a count of objects) as blocks."""
    return format_metric(metric, value, signed=signed)


# ------------------------------------------------------------------------------ the steps, in order
def _mser_linear(y: np.ndarray, cfg: LeakConfig) -> int:
    """Warm-up length: the first argmin over w of SSE(OLS line on y[w:]) / (m (m - 2)), m = len(y) - w."""
    n = len(y)
    cap = int(cfg.max_warmup_fraction * n)
    if cap <= 0 or n - cap < max(cfg.min_points, 4):
        return 0
    y = y - np.median(y)  # RSS is ~1e8: squared sums would lose the pages
    t = np.arange(n, dtype=float) - n / 2

    def suffix(a: np.ndarray) -> np.ndarray:  # suffix(a)[w] = a[w:].sum()
        return np.cumsum(a[::-1])[::-1]

    m = np.arange(n, 0, -1, dtype=float)
    st, stt, sy, sty, syy = suffix(t), suffix(t * t), suffix(y), suffix(t * y), suffix(y * y)
    with np.errstate(divide="ignore", invalid="ignore"):
        sxx = stt - st * st / m
        sxy = sty - st * sy / m
        sse = syy - sy * sy / m - np.where(sxx > 0, sxy * sxy / sxx, 0.0)
        cost = np.maximum(sse, 0.0) / (m * (m - 2))
    return int(np.argmin(cost[: cap + 1]))  # the first minimum: a flat tail ties at 0, keep the most data


def _steady_verdict(y: np.ndarray, w: int, metric: str, cfg: LeakConfig, note: str = "") -> SeriesVerdict:
    """Judge y[w:]; a leak that stopped growing or is one step pushes the warm-up (rules 6-7)."""
    verdict = _judge(y, w, metric, cfg, note)
    for _ in range(3):
        if verdict.verdict != "leak":
            break
        half, floor = w + (len(y) - w) // 2, verdict.floor or 0.0
        later = _judge(y, half, metric, cfg, note + f"growth stopped before iteration {half} (warm-up); ", floor)
        if cfg.growth_stopped and later.verdict == "no-leak" and later.slope_low is not None and \
                later.slope_low > -floor:
            return later
        k = _one_step(y[w:], cfg) if cfg.one_step else None
        if k is None:
            break
        w += k
        verdict = _judge(y, w, metric, cfg, note + f"one-time step at iteration {w} taken as warm-up; ")
    k = _one_step(y[w:], cfg, up=False) if verdict.verdict == "no-leak" and cfg.one_drop else None
    # A purge can tilt the line down over a leak (rule 8): if the drop is big enough to hide half a
    # floor's worth of growth over the part, the iterations after it must agree.
    if k is not None and y[w: w + k].mean() - y[w + k:].mean() >= max(cfg.min_growth_bytes,
                                                                     (verdict.floor or 0.0) * verdict.n / 2):
        after = _judge(y, w + k, metric, cfg, floor=verdict.floor)
        if after.verdict != "no-leak":
            needed = after.needed_iterations or w + 2 * verdict.n
            return replace(verdict, verdict="inconclusive", needed_iterations=needed,
                           reason=f"a drop at iteration {w + k} may hide growth: the {after.n} iterations after "
                           f"it do not rule out a leak; about {needed} iterations needed ({verdict.reason})")
    return verdict


def _one_step(y: np.ndarray, cfg: LeakConfig, up: bool = True) -> int | None:
    """Index after the single upward (or downward) step that fits y better than a line, if one does."""
    m = len(y)
    if m < 2 * cfg.min_points:
        return None
    y = y - np.median(y)
    t = np.arange(m, dtype=float)
    sse_line = float(np.sum((y - np.polyval(np.polyfit(t, y, 1), t)) ** 2))
    k = np.arange(1, m)  # split before index k
    c, c2 = np.cumsum(y)[:-1], np.cumsum(y * y)[:-1]
    tot, tot2 = y.sum(), (y * y).sum()
    sse = (c2 - c * c / k) + ((tot2 - c2) - (tot - c) ** 2 / (m - k))
    best = int(np.argmin(sse))
    rises = (tot - c[best]) / (m - k[best]) > c[best] / k[best]
    return int(k[best]) if rises == up and sse[best] < sse_line else None


def _refill(y: np.ndarray, start: int, leak: SeriesVerdict, cfg: LeakConfig) -> SeriesVerdict:
    """Rule 9: a leak that has not passed an earlier high and did not grow before it may be a refill."""
    if leak.verdict != "leak":
        return leak
    w, m, floor = leak.warmup_end, leak.n, leak.floor or 0.0
    k, hold = max(3, cfg.min_points // 2), max(3, m // 4)
    if w + m // 2 - start < hold:
        return leak
    # Levels held for a while (medians of m/4 iterations): a transient start-up peak is not a working set.
    levels = np.median(np.lib.stride_tricks.sliding_window_view(y[start: w + m // 2], hold), axis=1)
    first = start + len(levels) - 1 - int(np.argmax(levels[::-1]))  # the last window at the high level
    peak = first + int(np.argmax(y[first: first + hold]))  # ... and its highest point, before any drop
    high, end = float(levels.max()), float(np.median(y[-k:]))
    if end - high >= floor * m / 4:
        return leak  # a new high by half the growth a leak at the floor would give over the second half
    w0 = start + _mser_linear(y[start: peak + 1], cfg)
    if peak + 1 - w0 >= cfg.min_points and _steady_verdict(y[: peak + 1], w0, leak.metric, cfg).verdict == "leak":
        return leak  # it was growing right up to that level too: a leak with a purge in it
    needed = len(y) + math.ceil(max(0.0, high - end) / max(leak.slope or 0.0, floor)) + max(cfg.min_points, m // 2)
    return replace(leak, verdict="inconclusive", needed_iterations=needed,
                   reason=f"has not passed the level of iteration {peak} ({format_size(end - high, signed=True)}) "
                   f"and did not grow before it: refilling what a purge released stops there, a leak goes on; "
                   f"about {needed} iterations needed ({leak.reason})")


def _jumps(d: np.ndarray, cfg: LeakConfig) -> tuple[np.ndarray, float]:
    """Mask of the jumps among the changes ``d``, and the typical change."""
    if len(d) < cfg.min_points:
        return np.zeros(len(d), dtype=bool), 0.0
    typical = float(np.median(d))
    dev = np.abs(d - typical)
    return dev > max(cfg.jump_mads * 1.4826 * float(np.median(dev)), cfg.min_growth_bytes), typical


def _without(s: np.ndarray, at: np.ndarray, typical: float) -> np.ndarray:
    """``s`` with the jumps after indices ``at`` taken out (every later point lowered by the height)."""
    out = s.copy()
    for i, h in zip(at, _heights(s, at, typical)):
        out[i + 1:] -= h
    return out


def _heights(s: np.ndarray, at: np.ndarray, typical: float, k: int = 5) -> np.ndarray:
    """Height of each jump (after index ``at``): medians of up to k points either side, less the trend.

    One difference would carry two points' noise into the level of everything after it; medians
    of the neighbouring plateaus (cut at the adjacent jumps) carry a fraction of it.
    """
    edges = np.concatenate([[-1], at, [len(s) - 1]])
    out = np.empty(len(at))
    for j, i in enumerate(at):
        lo, hi = max(edges[j] + 1, i - k + 1), min(edges[j + 2], i + k)
        out[j] = np.median(s[i + 1: hi + 1]) - np.median(s[lo: i + 1]) - typical * ((hi + i + 1) - (lo + i)) / 2
    return out


def _hamed_rao(resid: np.ndarray) -> float:
    """Variance inflation n/n* of the Mann-Kendall statistic from the rank autocorrelations."""
    m = len(resid)
    r = stats.rankdata(resid)
    r -= r.mean()
    denom = float(r @ r)
    if m < 4 or denom == 0:
        return 1.0
    rho = np.correlate(r, r, mode="full")[m: 2 * m - 3] / denom  # lags 1 .. m-3
    # Hamed-Rao keep the lags significant at 5%, but RSS drifts: many small positive autocorrelations,
    # each insignificant, that add up.  Geyer's (1992) initial positive sequence sums lags in pairs
    # while a pair's sum stays positive (and drops the long lags, which sum to -1/2 by construction).
    pairs = rho[: (len(rho) // 2) * 2].reshape(-1, 2).sum(axis=1)
    negative = np.flatnonzero(pairs <= 0)
    mk = m - np.arange(1, 2 * (int(negative[0]) if negative.size else len(pairs)) + 1)
    f = 1 + 2 * float(np.sum(mk * (mk - 1) * (mk - 2) * rho[: len(mk)])) / (m * (m - 1) * (m - 2))
    return max(f, 1.0)  # negative autocorrelation would shrink the variance: stay conservative


def _judge(y: np.ndarray, w: int, metric: str, cfg: LeakConfig, note: str = "",
           floor: float | None = None) -> SeriesVerdict:
    """Steps 2-4 on y[w:]; ``floor`` overrides the computed floor (rule 6 keeps the whole part's)."""
    s = y[w:]
    m = len(s)
    short = m < cfg.min_points
    floor_inf = max(cfg.floor_bytes, cfg.floor_relative * abs(float(np.median(s)) if m else 0.0))
    floor = floor if floor is not None else max(floor_inf, cfg.min_growth_bytes / max(m, 1))
    if m < 3 or np.ptp(s) == 0:
        if short:
            return SeriesVerdict(metric, "inconclusive", m, w, None, None, None, None, None, None,
                                 w + cfg.min_points, note + f"only {m} steady iterations after warm-up at {w}, "
                                 f"{cfg.min_points} needed", floor)
        return SeriesVerdict(metric, "no-leak", m, w, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, None,
                             note + f"constant over {m} iterations after warm-up at {w}", floor, 0.0, 1.0)
    t = np.arange(m, dtype=float)
    # Theil-Sen holds all m^2/2 pairwise slopes: past max_points, judge medians of equal blocks
    # (at their centres, so the slope stays per iteration); the noise is still measured per iteration.
    tb, sb = t, s
    if m > cfg.max_points:
        edges = np.linspace(0, m, cfg.max_points + 1).astype(int)
        tb = np.array([(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])])
        sb = np.array([np.median(s[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    slope = float(stats.theilslopes(sb, tb).slope)
    resid = s - slope * t
    r = resid - np.median(resid)
    sigma = 1.4826 * float(np.median(np.abs(r))) or float(np.std(r))  # page-quantized: the MAD is often 0
    f = _hamed_rao(sb - slope * tb) if cfg.autocorrelation else 1.0
    z_a, z_b = stats.norm.isf(cfg.alpha), stats.norm.isf(1 - cfg.power)
    mk = stats.kendalltau(tb, sb, method="asymptotic", alternative="greater")
    p = float(stats.norm.sf(stats.norm.isf(mk.pvalue) / math.sqrt(f)))
    conf = min(1 - 2 * stats.norm.sf(z_a * math.sqrt(f)), 1 - 1e-12)  # scipy overflows at conf == 1
    ci = stats.theilslopes(sb, tb, conf)
    low, high = float(ci.low_slope), float(ci.high_slope)
    noise_growth = cfg.noise_multiple * sigma

    def verdict(v: Verdict, needed: int | None, why: str) -> SeriesVerdict:
        def fv(x: float, signed: bool = False) -> str:
            return format_value(metric, x, signed)

        detail = (f"{fv(slope, True)}/iteration over {m} iterations after warm-up at {w} "
                  f"(interval {fv(low)} to {fv(high)}, p={p:.2g}, floor {fv(floor)}, noise {fv(sigma)})")
        return SeriesVerdict(metric, v, m, w, slope, low, high, float(mk.statistic), p, slope * m, needed,
                             note + why + detail, floor, sigma, f)

    if not short and p < cfg.alpha and slope >= floor and slope * m >= noise_growth:
        return verdict("leak", None, "grows ")
    if not short and high < floor:
        return verdict("no-leak", None, "no leak above the floor: ")
    m_se = (math.sqrt(12) * sigma * math.sqrt(f) * (z_a + z_b) / floor_inf) ** (2 / 3)
    half = (high - slope) if slope < floor else (slope - low)
    m_ci = m * (half / max(abs(slope - floor), floor / 4)) ** (2 / 3)
    needed = w + math.ceil(max(m_se, noise_growth / floor_inf, m_ci, cfg.min_points, m + 1))
    why = ("too few steady iterations" if short else "trend not significant" if p >= cfg.alpha
           else "significant trend below the floor" if slope < floor else "growth within the noise")
    return verdict("inconclusive", needed, f"{why} (about {needed} iterations needed): ")
