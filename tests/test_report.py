"""The report: files exist, parse, agree with each other, embed their plots, and are written atomically.

Results are built in-process (series through the real leak analysis) so these tests need no child
process; one test renders a real short run, as a check that nothing in real results surprises it.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stress_tests.report import INDEX, JUNIT, PLOTS, SUMMARY, write_report
from stress_tests.report.common import stage_metric, write_atomic
from stress_tests.report.plots import fit_line
from stress_tests.results import Results, write_results
from stress_tests.runner import finish
from stress_tests.spec import Applied, CellResult, CellSpec, StageMemory

MiB, KiB = 1 << 20, 1 << 10
FINGERPRINT = {"key": "Linux-x86_64-glibc2.36-py3.11", "os": "Linux", "machine": "x86_64", "glibc": "2.36",
               "python": "3.11.7", "numpy": "2.1.0", "cpu": "test CPU", "cpu_count": 2, "runtime": "0.1.0"}
STAGES = [StageMemory("create_core", 48 * MiB, 48 * MiB, 28 * MiB, 28 * MiB, 48 * MiB),
          StageMemory("compile", 48 * MiB, 50 * MiB, 28 * MiB, 30 * MiB, 53 * MiB),
          StageMemory("iter1 infer", 50 * MiB, 51 * MiB, 30 * MiB, 31 * MiB, 52 * MiB)]


def cell(allocator: str = "glibc", leak: int = 0, n: int = 80, **spec: Any) -> CellResult:
    """A finished cell: flat after a 10-iteration warm-up ramp, plus ``leak`` bytes per iteration."""
    def series(base: int) -> list[int]:
        return [base + min(i, 10) * 64 * KiB + (i * leak if i >= 10 else 0) for i in range(n)]

    rss, anon = series(50 * MiB), series(30 * MiB)
    hwm = [max(rss[: i + 1]) + 512 * KiB for i in range(n)]
    s = CellSpec(allocator=allocator, iterations=n, inject_leak_bytes=leak, **spec)
    result = CellResult(s, "ok", series={"VmRSS": rss, "VmHWM": hwm, "RssAnon": anon},  # type: ignore[dict-item]
                        latency=[0.001] * n, stages=list(STAGES), applied=Applied(allocator, verified=True),
                        seconds=1.5)
    return finish(result)


def crashed() -> CellResult:
    return CellResult(CellSpec(pipeline="recompile"), "crashed", reason="killed by SIGSEGV after 3 iteration(s)",
                      series={"VmRSS": [50 * MiB] * 3}, signal="SIGSEGV", stderr_tail="Fatal Python error\x01\x1b[0m")


def skipped() -> CellResult:
    return CellResult(CellSpec(allocator="mimalloc"), "skipped", reason="mimalloc is not installed")


def memcheck() -> CellResult:
    return CellResult(CellSpec(pipeline="memcheck"), "ok", stages=list(STAGES))


@pytest.fixture(scope="module")
def results() -> Results:
    cells = [cell("glibc"), cell("jemalloc"), cell("glibc", leak=64 * KiB), crashed(), skipped(), memcheck()]
    return Results(cells, FINGERPRINT, ["memgate", "matrix"], "2025-01-01T12:00:00Z", "0.1.0")


def comparison_for(results: Results) -> SimpleNamespace:
    """A comparison as ``stress_tests.baselines.compare`` returns it: one stage regression, one improvement."""
    rows = []
    for metric, base, cur, verdict in (("hwm_delta:compile", 2 * MiB, 5 * MiB, "regression"),
                                       ("rss_delta:compile", 2 * MiB, 2 * MiB, "ok"),
                                       ("latency", 0.004, 0.001, "improvement")):
        rows.append({"cell": "reinfer/mlp/default/builtin/jemalloc", "pipeline": "reinfer", "model": "mlp",
                     "mode": "default", "runtime": "builtin", "allocator": "jemalloc", "metric": metric,
                     "baseline": base, "current": cur, "ratio": cur / base, "tolerance": 1 * MiB if "delta" in metric
                     else 0.002, "verdict": verdict})
    return SimpleNamespace(rows=rows, env_key="linux-x86_64-py3.11-numpy2-jemalloc-default",
                           regressions=lambda: [r for r in rows if r["verdict"] == "regression"])


@pytest.fixture(scope="module")
def report(results: Results, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    page = write_report(results, out, comparison_for(results))
    assert page == out / INDEX
    return out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR, the first chunk
    return width, height


def test_the_report_files_exist(report: Path) -> None:
    for name in (SUMMARY, JUNIT, INDEX):
        assert (report / name).stat().st_size > 0
    plots = sorted(p.name for p in (report / PLOTS).iterdir())
    # a plot per cell with series (3 finished + 1 crashed), stages for 4 cells, one overlay of glibc/jemalloc/leak
    assert len([p for p in plots if p.startswith("cell-")]) == 4
    assert len([p for p in plots if p.startswith("stages-")]) == 4
    assert plots.count("group-reinfer__mlp__default.png") == 1
    assert "cell-reinfer__mlp__default__builtin__glibc__leak_65536.png" in plots


def test_plots_are_valid_images_of_sensible_size(report: Path) -> None:
    from matplotlib.image import imread

    for path in (report / PLOTS).iterdir():
        width, height = png_size(path)
        assert 600 <= width <= 1600 and 250 <= height <= 1600, (path.name, width, height)
        assert imread(path).shape[:2] == (height, width)  # the whole file decodes


def test_junit_counts_match_its_test_cases(report: Path, results: Results) -> None:
    root = ET.parse(report / JUNIT).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(results.cells) == int(suite.get("tests", -1)) == int(root.get("tests", -1))
    failures = [c for c in cases if c.find("failure") is not None]
    errors = [c for c in cases if c.find("error") is not None]
    skips = [c for c in cases if c.find("skipped") is not None]
    assert (len(failures), len(errors), len(skips)) == (2, 1, 1)  # the leak and the regression; the crash; mimalloc
    assert int(suite.get("failures", -1)) == 2 and int(suite.get("errors", -1)) == 1
    assert int(suite.get("skipped", -1)) == 1
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert ("memgate.reinfer.mlp", "default/builtin/glibc/leak=65536") in names
    assert len(names) == len(cases)


def test_junit_failures_carry_verdict_growth_and_reason(report: Path) -> None:
    suite = ET.parse(report / JUNIT).getroot().find("testsuite")
    assert suite is not None
    by_name = {f"{c.get('classname')}::{c.get('name')}": c for c in suite.findall("testcase")}
    leak = by_name["memgate.reinfer.mlp::default/builtin/glibc/leak=65536"].find("failure")
    assert leak is not None and leak.get("type") == "leak"
    assert "RssAnon +64.0 KiB/it" in leak.get("message", "") and "memory grows" in leak.get("message", "")
    regression = by_name["memgate.reinfer.mlp::default/builtin/jemalloc"].find("failure")
    assert regression is not None and regression.get("type") == "regression"
    assert "hwm_delta:compile 5.0 MiB vs baseline 2.0 MiB" in regression.get("message", "")
    error = by_name["memgate.recompile.mlp::default/builtin/glibc"].find("error")
    assert error is not None and "SIGSEGV" in error.get("message", "")
    assert "\x01" not in (error.text or "")  # control characters from stderr are not valid XML 1.0


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.srcs += [v or "" for k, v in attrs if k in ("src", "href") and not (v or "").startswith("#")]


def test_html_is_self_contained_and_shows_every_cell(report: Path, results: Results) -> None:
    page = (report / INDEX).read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "link" not in parser.tags
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert len(parser.srcs) == len(list((report / PLOTS).iterdir()))  # every plot, each once
    for r in results.cells:
        assert r.spec.id in page
    assert page.index("Regressions") < page.index('id="cells"')  # regressions first
    assert "hwm_delta:compile" in page


def test_summary_puts_regressions_and_leaks_first(report: Path) -> None:
    md = (report / SUMMARY).read_text(encoding="utf-8")
    assert md.startswith("## memgate: ❌ 3 of 6 cells fail (1 crashed, 1 leak, 1 regression; 1 metric regressed)")
    assert "Against the baselines: 1 regression · 1 improvement · 1 ok" in md
    assert md.index("### Regressions") < md.index("### Leaks and failures") < md.index("### Cells")
    assert "Linux-x86_64-glibc2.36-py3.11" in md and "linux-x86_64-py3.11-numpy2-jemalloc-default" in md
    assert "+64.0 KiB/it" in md and "How to read this" in md
    assert "### Improvements beyond tolerance" in md


def test_no_temporary_files_are_left(report: Path) -> None:
    leftovers = [p.name for p in report.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_write_keeps_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_atomic(tmp_path / "summary.md", "old\n")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("stress_tests.atomic.os.replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_same_results_same_files_and_stale_plots_removed(results: Results, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    small = Results(results.cells[:2], FINGERPRINT, created="2025-01-01T12:00:00Z")
    write_report(small, a)
    write_report(small, b)
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    for path in a.rglob("*.*"):  # PNGs included: no timestamp in them
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path.name
    write_report(Results(results.cells[:1], FINGERPRINT), a)  # the same folder, one cell now
    assert sorted(p.name for p in (a / PLOTS).iterdir()) == ["cell-reinfer__mlp__default__builtin__glibc.png",
                                                              "stages-reinfer__mlp__default__builtin__glibc.png"]


def test_repeats_of_a_cell_share_one_plot_embedded_once(tmp_path: Path) -> None:
    # memgate check --repeat 3: three runs of each of two cells. Before, every run had its own two plots
    # and its own copy of them in the page (a 720-cell recording: 1,238 PNGs, a 42 MB page, 4 minutes).
    runs = [cell(a) for _ in range(3) for a in ("glibc", "jemalloc")]
    write_report(Results(runs, FINGERPRINT, created="2025-01-01T12:00:00Z"), tmp_path)
    assert sorted(p.name for p in (tmp_path / PLOTS).iterdir()) == [
        "cell-reinfer__mlp__default__builtin__glibc.png", "cell-reinfer__mlp__default__builtin__jemalloc.png",
        "group-reinfer__mlp__default.png",
        "stages-reinfer__mlp__default__builtin__glibc.png", "stages-reinfer__mlp__default__builtin__jemalloc.png"]
    page = (tmp_path / INDEX).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 5
    assert page.count('with <a href="#cell-reinfer__mlp__default__builtin__glibc">the first run</a>') == 2
    assert page.count('<article id="cell-') == 6  # every run keeps its article, verdicts and stage table
    one = tmp_path / "one"
    write_report(Results(runs[:2], FINGERPRINT, created="2025-01-01T12:00:00Z"), one)
    assert (tmp_path / PLOTS / "cell-reinfer__mlp__default__builtin__glibc.png").read_bytes() != \
        (one / PLOTS / "cell-reinfer__mlp__default__builtin__glibc.png").read_bytes()  # the repeats are drawn


def test_without_a_comparison_the_report_says_so(results: Results, tmp_path: Path) -> None:
    write_report(Results([results.cells[0]], FINGERPRINT), tmp_path)
    md = (tmp_path / SUMMARY).read_text(encoding="utf-8")
    assert md.startswith("## memgate: ✅ 1 cell passes") and "No baselines compared" in md


def test_fit_line_passes_through_a_linear_steady_part() -> None:
    values: list[int | None] = [0] * 5
    values += [1000 * i for i in range(5, 20)]
    xs, ys = fit_line(values, {"slope": 1000.0, "warmup_end": 5}) or ([], [])
    assert xs == [5, 19] and ys == pytest.approx([5000 / MiB, 19000 / MiB])
    assert fit_line(values, {"slope": None, "warmup_end": 0}) is None


def test_stage_metrics_are_recognised() -> None:
    assert stage_metric("hwm_delta:iter1 infer") == ("iter1 infer", "hwm_delta")
    assert stage_metric("rss_delta:compile") == ("compile", "rss_delta")
    assert stage_metric("steady_rss") is None and stage_metric("latency") is None


def test_cli_report_writes_and_rejects_unreadable_input(results: Results, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from stress_tests.cli import main

    path = write_results(tmp_path / "results.json", results.cells[3:], FINGERPRINT)  # the quick ones to draw
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / INDEX).exists()
    assert str(tmp_path / "out" / INDEX) in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "out2")]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "out2")]) == 2
    assert not (tmp_path / "out2").exists()


@pytest.mark.stress
def test_a_real_run_renders(tmp_path: Path) -> None:
    from stress_tests.runner import run_cells

    [real] = run_cells([CellSpec(iterations=25)], workdir=tmp_path)
    write_report([real], tmp_path / "out")
    assert real.spec.id in (tmp_path / "out" / SUMMARY).read_text(encoding="utf-8")
    assert (tmp_path / "out" / PLOTS / "cell-reinfer__mlp__default__builtin__glibc.png").exists()
