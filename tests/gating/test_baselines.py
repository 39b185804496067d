"""Baselines without children: keys, the tolerance rule, compare's verdicts, update, merge and the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stress_tests import baselines, metrics, profiles
from stress_tests.baselines import BaselineError, compare, load_dir, merge, read_baseline, update, validate
from stress_tests.results import write_results
from stress_tests.spec import CellResult

from .helpers import FINGERPRINT, GLIBC_KEY, MiB, cell, results


def test_env_key_names_platform_allocator_and_profile() -> None:
    assert profiles.env_key(FINGERPRINT, "glibc") == GLIBC_KEY
    assert profiles.env_key(FINGERPRINT, "glibc", (("arena_max", "1"),)) == GLIBC_KEY.replace("default", "arena1")
    assert profiles.env_key(FINGERPRINT, "jemalloc", (("jemalloc.narenas", "1"),)).endswith("-jemalloc-arena1")
    assert profiles.env_key(FINGERPRINT, "glibc", (), trim=True).endswith("-glibc-trim")
    # settings no profile names are spelled out, sorted, so the same settings always give one file
    odd = profiles.env_key(FINGERPRINT, "glibc", (("top_pad", "0"), ("arena_max", "2")))
    assert odd.endswith("-glibc-arena_max=2+top_pad=0")
    assert profiles.env_key({**FINGERPRINT, "numpy": "1.26.4", "python": "3.10.2"}, "glibc").startswith(
        "linux-x86_64-py3.10-numpy1-")


@pytest.mark.parametrize("text, allocator, expected", [
    ("", "glibc", ((), False)),
    ("arena1", "jemalloc", ((("jemalloc.narenas", "1"),), False)),
    ("trim", "glibc", ((), True)),
    ("arena_max=2,trim", "glibc", ((("arena_max", "2"),), True)),
])
def test_profiles_from_the_environment(text: str, allocator: str, expected: tuple) -> None:
    env = {"MEMGATE_ALLOCATOR": allocator, "MEMGATE_TUNABLES": text}
    assert profiles.from_environment(env) == (allocator, *expected)


def test_unknown_profile_or_allocator_is_a_clear_error() -> None:
    with pytest.raises(profiles.ProfileError, match="choose from glibc"):
        profiles.from_environment({"MEMGATE_ALLOCATOR": "tcmallok"})
    with pytest.raises(profiles.ProfileError, match="default, arena1, trim"):
        profiles.from_environment({"MEMGATE_TUNABLES": "arena2"})


def test_tolerance_is_the_spread_above_the_floors() -> None:
    # floors: stage memory 10 % or 4 MiB, whichever is larger
    assert metrics.tolerance("hwm_delta:compile", 1 * MiB, 0) == 4 * MiB
    assert metrics.tolerance("hwm_delta:compile", 100 * MiB, 0) == pytest.approx(10 * MiB)
    # a spread beyond the floors widens the gate by SPREAD_MULTIPLE times the spread
    assert metrics.tolerance("hwm_delta:compile", 1 * MiB, 3 * MiB) == metrics.SPREAD_MULTIPLE * 3 * MiB
    assert metrics.tolerance("growth", 0.0, 0.0) == metrics.FLOORS["growth"].absolute


def test_pooled_repeats_give_median_and_range() -> None:
    runs = [metrics.Measure(10.0), metrics.Measure(14.0), metrics.Measure(11.0, spread=1.0)]
    assert metrics.pool(runs) == (11.0, 4.0)
    assert metrics.pool([metrics.Measure(10.0, spread=6.0)]) == (10.0, 6.0)


def test_file_backed_pages_widen_the_rss_gate_and_anon_delta_stays_tight(tmp_path: Path) -> None:
    # The kernel decides how much of a mapped file is resident after a stage: 2-6 MiB here.
    runs = [cell(compile_peak=20 * MiB, file_pages=f * MiB) for f in (2, 6, 4)]
    update([results(*runs)], tmp_path)
    got = read_baseline(tmp_path / f"{GLIBC_KEY}.json")["entries"]["reinfer/mlp/default/builtin"]["metrics"]
    assert got["rss_delta:compile"]["tolerance"] == metrics.tolerance("rss_delta:compile", 10 * MiB, 0, 6 * MiB)
    assert got["anon_delta:compile"]["value"] == 6 * MiB and got["anon_delta:compile"]["spread"] == 4 * MiB
    # more file pages resident: within the rss gate; more anonymous memory: anon_delta fails
    paged = compare(results(cell(compile_peak=20 * MiB, file_pages=12 * MiB)), tmp_path)
    assert not paged.regressions()
    grown = compare(results(cell(compile_peak=60 * MiB, file_pages=4 * MiB)), tmp_path)
    assert "anon_delta:compile" in {r["metric"] for r in grown.regressions()}


def test_mapped_weights_widen_steady_rss_but_not_steady_anon() -> None:
    c = cell(rss=50 * MiB)
    c.series["VmRSS"] = [v + 30 * MiB for v in c.series["RssAnon"]]  # 30 MiB of a mapped file resident
    got = metrics.measure(c)
    # levels are deltas from the child's state after its imports (40 MiB here), never absolute
    assert got["steady_rss"].value == 40 * MiB and got["steady_rss"].slack == 30 * MiB
    assert got["steady_rss"].file == 30 * MiB
    assert got["peak_hwm"].slack == 30 * MiB
    assert got["steady_anon"].value == 10 * MiB and got["steady_anon"].slack == 0


def test_a_settled_reading_after_the_loop_is_the_steady_level_of_a_timer_driven_allocator() -> None:
    c = cell(rss=50 * MiB)
    c.probe["settled_end"] = {"VmRSS": 46 * MiB, "RssAnon": 45 * MiB}  # jemalloc, settled after the loop
    got = metrics.measure(c)
    assert got["steady_rss"].value == 6 * MiB and got["steady_anon"].value == 5 * MiB  # above the 40 MiB start
    assert got["steady_anon"].spread == 0


def _mapped_more(c: CellResult, at_import: int, later: int = 0) -> CellResult:
    """``c`` as another install would measure it: ``at_import`` more file pages resident from the start,
    ``later`` more mapped by the compile stage (both VmRSS only; RssAnon unchanged)."""
    for i, s in enumerate(c.stages):
        extra_after = at_import + (later if i >= 1 else 0)
        extra_before = at_import + (later if i >= 2 else 0)
        s.rss_before += extra_before
        s.rss_after += extra_after
        s.peak += extra_after
    for name in ("VmRSS", "VmHWM"):
        c.series[name] = [v + at_import + later for v in c.series[name]]
    return c


def test_a_run_that_differs_only_by_file_backed_pages_passes_the_gate(tmp_path: Path) -> None:
    # tox env vs plain venv: 8.7 MiB more of the libraries' pages resident after the imports, and the
    # kernel faulting 6 MiB more of a mapped file in during compile; RssAnon identical.
    update([results(cell(), cell(), cell())], tmp_path)
    moved = compare(results(_mapped_more(cell(), at_import=int(8.7 * MiB), later=6 * MiB)), tmp_path)
    assert not moved.regressions(), moved.regressions()
    rss = next(r for r in moved.rows if r["metric"] == "rss_delta:compile")
    assert rss["file_move"] == 6 * MiB and rss["verdict"] == "ok"


def test_a_16_mib_anonymous_regression_at_the_same_stage_still_fails(tmp_path: Path) -> None:
    update([results(cell(), cell(), cell())], tmp_path)
    grown = compare(results(_mapped_more(cell(compile_peak=10 * MiB + 32 * MiB), at_import=int(8.7 * MiB))),
                    tmp_path)
    failed = {r["metric"]: r for r in grown.regressions()}
    assert {"anon_delta:compile", "rss_delta:compile", "hwm_delta:compile"} <= set(failed)
    # the row names what moved and how much of it was file-backed
    assert failed["rss_delta:compile"]["cause"] == "+16.0 MiB VmRSS, of which +0 B file-backed, RssAnon +16.0 MiB"


def test_entries_record_their_blas_kernels_and_compare_warns_on_another(tmp_path: Path) -> None:
    kernels = ["SkylakeX", "Haswell", "SkylakeX"]
    update([results(*[cell() for _ in kernels], fingerprint={**FINGERPRINT, "blas": {"kernel": "SkylakeX"}})],
           tmp_path)
    data = read_baseline(tmp_path / f"{GLIBC_KEY}.json")
    assert data["entries"]["reinfer/mlp/default/builtin"]["blas_kernels"] == ["SkylakeX"]
    runs = [cell() for _ in kernels]
    for c, k in zip(runs, kernels):  # repeats recorded with --blas-kernels carry their own
        object.__setattr__(c, "spec", c.spec.replace(blas_kernel=k))
    update([results(*runs)], tmp_path)
    entry = read_baseline(tmp_path / f"{GLIBC_KEY}.json")["entries"]["reinfer/mlp/default/builtin"]
    assert entry["blas_kernels"] == ["Haswell", "SkylakeX"]
    other = compare(results(cell(), fingerprint={**FINGERPRINT, "blas": {"kernel": "Sandybridge"}}), tmp_path)
    assert any("BLAS kernel Sandybridge" in w and "Haswell, SkylakeX" in w for w in other.warnings), other.warnings
    same = compare(results(cell(), fingerprint={**FINGERPRINT, "blas": {"kernel": "Haswell"}}), tmp_path)
    assert not any("BLAS kernel" in w for w in same.warnings)


def test_a_slowdown_is_reported_not_failed_unless_latency_is_gated(tmp_path: Path) -> None:
    update([results(cell(latency=0.010), cell(latency=0.011), cell(latency=0.012))], tmp_path)
    loaded = compare(results(cell(latency=0.200)), tmp_path)  # a 20x slowdown: a loaded machine, or real
    [row] = [r for r in loaded.rows if r["metric"] == "latency"]
    assert row["verdict"] == "slower" and not loaded.failed(strict=True)
    gated = compare(results(cell(latency=0.200)), tmp_path, gate_latency=True)
    assert [r["metric"] for r in gated.regressions()] == ["latency"] and gated.failed()


def test_version_1_files_lose_their_absolute_levels_when_read(tmp_path: Path) -> None:
    update([results(cell())], tmp_path)
    path = tmp_path / f"{GLIBC_KEY}.json"
    data = json.loads(path.read_text())
    data["version"] = 1
    for entry in data["entries"].values():
        entry["metrics"]["steady_rss"]["value"] = 90 * MiB  # an absolute level, as version 1 stored it
        for metric in entry["metrics"].values():
            metric.pop("file", None)
    path.write_text(json.dumps(data))
    got = read_baseline(path)
    assert got["version"] == baselines.VERSION and "re-record" in got["migrated"]
    metrics_left = got["entries"]["reinfer/mlp/default/builtin"]["metrics"]
    assert not {"steady_rss", "steady_anon", "peak_hwm"} & set(metrics_left) and "anon_delta:compile" in metrics_left
    assert not compare(results(cell()), tmp_path).regressions()


def test_update_writes_sorted_valid_files_with_every_metric(tmp_path: Path) -> None:
    changes = update([results(cell(), cell(compile_peak=11 * MiB), cell(compile_peak=12 * MiB))], tmp_path)
    assert [c.env_key for c in changes] == [GLIBC_KEY] and changes[0].added == ["reinfer/mlp/default/builtin"]
    text = (tmp_path / f"{GLIBC_KEY}.json").read_text()
    data = json.loads(text)
    assert text == baselines.dumps(data), "sorted keys, two-space indent: the diff of an update reads well"
    entry = data["entries"]["reinfer/mlp/default/builtin"]
    assert entry["runs"] == 3
    peak = entry["metrics"]["hwm_delta:compile"]
    assert (peak["value"], peak["spread"], peak["unit"]) == (11 * MiB, 2 * MiB, "bytes")
    assert peak["tolerance"] == metrics.tolerance("hwm_delta:compile", 11 * MiB, 2 * MiB)
    assert {"rss_delta:compile", "anon_delta:compile", "steady_rss", "peak_hwm", "growth", "latency"} <= set(
        entry["metrics"])
    assert data["environment"] == {"allocator": "glibc", "allocator_version": "2.36", "profile": "default",
                                   "tunables": [], "trim": False}


def test_update_keeps_other_entries_and_other_environments(tmp_path: Path) -> None:
    update([results(cell(model="bert"), cell(allocator="jemalloc"))], tmp_path)
    jemalloc = tmp_path / "linux-x86_64-py3.11-numpy2-jemalloc-default.json"
    other_platform = tmp_path / "linux-aarch64-py3.12-numpy2-glibc-default.json"
    update([results(cell(), fingerprint={**FINGERPRINT, "machine": "aarch64", "python": "3.12.1"})], tmp_path)
    before = {p.name: p.read_bytes() for p in (jemalloc, other_platform)}
    [change] = update([results(cell(compile_peak=20 * MiB))], tmp_path)
    assert change.kept == 1 and change.added == ["reinfer/mlp/default/builtin"]
    entries = read_baseline(tmp_path / f"{GLIBC_KEY}.json")["entries"]
    assert set(entries) == {"reinfer/bert/default/builtin", "reinfer/mlp/default/builtin"}
    assert {p.name: p.read_bytes() for p in (jemalloc, other_platform)} == before
    [again] = update([results(cell(compile_peak=30 * MiB))], tmp_path)
    assert again.changed and "hwm_delta:compile 20.0 MiB -> 30.0 MiB (beyond ±4.0 MiB)" in again.changed[0]


def test_failed_leaking_and_injected_runs_are_never_recorded(tmp_path: Path) -> None:
    [change] = update([results(cell(status="crashed"), cell(model="bert", growth=64 * 1024, status="leak"),
                               cell(model="u2netp", inject_leak_bytes=4096))], tmp_path)
    assert not change.added and len(change.skipped) == 3
    assert not (tmp_path / f"{GLIBC_KEY}.json").exists()


def test_compare_names_each_verdict(tmp_path: Path) -> None:
    update([results(cell(), cell(model="bert"), cell(model="resnet18"))], tmp_path)
    now = results(cell(compile_peak=40 * MiB), cell(model="bert", compile_peak=2 * MiB),
                  cell(model="u2netp"), cell(model="resnet18", status="crashed"))
    c = compare(now, tmp_path)
    verdict = {(r["model"], r["metric"]): r["verdict"] for r in c.rows}
    assert verdict[("mlp", "hwm_delta:compile")] == "regression"
    assert verdict[("mlp", "growth")] == "ok"
    assert verdict[("bert", "hwm_delta:compile")] == "improvement"
    assert verdict[("u2netp", "hwm_delta:compile")] == "new"
    assert verdict[("resnet18", "hwm_delta:compile")] == "missing"
    assert {r["metric"] for r in c.regressions()} == {"hwm_delta:compile", "rss_delta:compile", "anon_delta:compile"}
    [reg] = [r for r in c.regressions() if r["metric"] == "hwm_delta:compile"]
    assert reg["cell"] == "reinfer/mlp/default/builtin/glibc" and reg["ratio"] == pytest.approx(4.0)
    assert reg["baseline"] == 10 * MiB and reg["current"] == 40 * MiB and reg["tolerance"] == 4 * MiB
    assert set(reg) >= {"cell", "pipeline", "model", "mode", "runtime", "allocator", "metric", "baseline",
                        "current", "ratio", "tolerance", "verdict"}
    assert c.env_key == GLIBC_KEY and c.failed() and c.failed(strict=True)
    assert json.loads(json.dumps(c.to_dict()))["counts"]["regression"] == 3


def test_a_cell_without_baseline_fails_only_when_strict(tmp_path: Path) -> None:
    c = compare(results(cell()), tmp_path)
    assert c.missing_files == [GLIBC_KEY] and c.new() and not c.regressions()
    assert not c.failed() and c.failed(strict=True)


def test_an_injected_leak_is_compared_with_the_clean_baseline(tmp_path: Path) -> None:
    update([results(cell())], tmp_path)
    c = compare(results(cell(growth=64 * 1024, inject_leak_bytes=64 * 1024, status="leak")), tmp_path)
    assert {r["metric"] for r in c.regressions()} >= {"growth"}


def test_merge_combines_shards_and_machines(tmp_path: Path) -> None:
    shards = []
    for i, allocator in enumerate(["glibc", "jemalloc", "glibc"]):
        path = tmp_path / f"shard{i}" / "results.json"
        write_results(path, [cell(allocator=allocator, compile_peak=(10 + i) * MiB)], FINGERPRINT)
        shards.append(path)
    out = tmp_path / "merged"
    changes = merge(shards, out)
    assert [c.env_key for c in changes] == [GLIBC_KEY, GLIBC_KEY.replace("glibc", "jemalloc")]
    glibc = read_baseline(out / f"{GLIBC_KEY}.json")["entries"]["reinfer/mlp/default/builtin"]
    assert glibc["runs"] == 2 and glibc["metrics"]["hwm_delta:compile"]["spread"] == 2 * MiB
    # a baseline file is an input too: machines' baselines merge into one folder
    again = merge([out / f"{GLIBC_KEY}.json"], tmp_path / "copy")
    assert again[0].added == ["reinfer/mlp/default/builtin"]
    assert load_dir(tmp_path / "copy")[GLIBC_KEY]["entries"] == load_dir(out)[GLIBC_KEY]["entries"]


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["entries"]["reinfer/mlp/default/builtin"]["metrics"]["growth"].pop("tolerance"),
     "$['entries']['reinfer/mlp/default/builtin']['metrics']['growth']: 'tolerance' is a required property"),
    (lambda d: d["entries"]["reinfer/mlp/default/builtin"]["metrics"]["steady_rss"].update(value="50 MiB"),
     "$['entries']['reinfer/mlp/default/builtin']['metrics']['steady_rss']['value']: '50 MiB' is not of type"),
    (lambda d: d["entries"]["reinfer/mlp/default/builtin"]["metrics"].update(vmrss={}),
     "$['entries']['reinfer/mlp/default/builtin']['metrics']: 'vmrss' does not match"),
    (lambda d: d["entries"].update({"reinfer/mlp": d["entries"]["reinfer/mlp/default/builtin"]}),
     "$['entries']: 'reinfer/mlp' does not match"),
    (lambda d: d.update(version=3), "$['version']: 3 is not one of [1, 2]"),
])
def test_schema_rejects_a_malformed_baseline_naming_the_json_path(tmp_path: Path, damage, message: str) -> None:
    update([results(cell())], tmp_path)
    path = tmp_path / f"{GLIBC_KEY}.json"
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as e:
        read_baseline(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    with pytest.raises(BaselineError, match="is not of type|required|was expected|does not match|is not one of"):
        compare(results(cell()), tmp_path)


def test_schema_accepts_the_committed_baselines() -> None:
    folder = Path(__file__).resolve().parents[2] / "baselines"
    for path in sorted(folder.glob("*.json")):
        data = read_baseline(path)
        assert path.stem == data["env_key"]
        assert path.read_text() == baselines.dumps(data), f"{path.name} is not in canonical form"
        validate(data)
