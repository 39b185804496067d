"""Probes: parsing /proc/self/status, the kept-descriptor sampler, the peak reset, the psutil fallback."""

from __future__ import annotations

import os
import sys
from array import array

import pytest

from stress_tests.journal import Journal, read_journal
from stress_tests.probes import MISSING, ProcProbe, PsutilProbe, SeriesBuffer, make_probe, parse_status
from stress_tests.spec import SERIES_FIELDS

STATUS = """Name:\tpython3
State:\tR (running)
VmPeak:\t  300000 kB
VmSize:\t  290000 kB
VmHWM:\t   60000 kB
VmRSS:\t   50000 kB
RssAnon:\t   30000 kB
RssFile:\t   19000 kB
RssShmem:\t    1000 kB
Threads:\t3
"""
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")


def test_parse_status_converts_kb_to_bytes() -> None:
    got = parse_status(STATUS)
    assert got["VmRSS"] == 50000 * 1024 and got["VmPeak"] == 300000 * 1024
    assert got["RssAnon"] + got["RssFile"] + got["RssShmem"] == got["VmRSS"]  # type: ignore[operator]
    assert got["Threads"] == 3


def test_parse_status_reports_absent_fields_as_none() -> None:
    got = parse_status("VmRSS:\t 10 kB\n")  # e.g. an old kernel without the Rss* split
    assert got["VmRSS"] == 10240
    assert got["RssAnon"] is None and got["Threads"] is None


@linux
def test_sample_is_plausible_and_matches_statm() -> None:
    probe = ProcProbe()
    try:
        s = probe.sample()
        assert all(s[f] is not None for f in SERIES_FIELDS)
        assert 1 << 20 < s["VmRSS"] <= s["VmSize"]  # type: ignore[operator]
        assert s["VmHWM"] >= s["VmRSS"] - (1 << 20)  # type: ignore[operator]
        assert s["Threads"] >= 1  # type: ignore[operator]
        size, rss, shared = probe.statm()
        assert abs(rss - s["VmRSS"]) < 4 << 20  # type: ignore[operator]
        buf = array("q", [MISSING]) * len(probe.fields)
        probe.sample_into(buf, 0)
        assert MISSING not in buf
        assert abs(buf[probe.fields.index("VmRSS")] - s["VmRSS"]) < 4 << 20  # type: ignore[operator]
    finally:
        probe.close()


@linux
def test_clear_refs_resets_the_peak() -> None:
    probe = ProcProbe()
    if probe.peak_reset != "clear_refs":
        pytest.skip(f"clear_refs refused here: {probe.peak_reset_error}")
    block = bytearray(b"\x01") * (64 << 20)  # touched, so resident
    del block  # large blocks are unmapped on free: RSS falls, the peak stays
    before = probe.sample()
    assert before["VmHWM"] - before["VmRSS"] > 48 << 20  # type: ignore[operator]
    assert probe.reset_peak()
    after = probe.sample()
    assert after["VmHWM"] - after["VmRSS"] < 8 << 20  # type: ignore[operator]
    probe.close()


def test_a_refused_clear_refs_falls_back_to_the_high_water_mark(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A /proc without a writable clear_refs (read-only mount, seccomp, old kernel)."""
    (tmp_path / "status").write_text(STATUS)
    (tmp_path / "statm").write_text("70000 12500 5000 1 0 9000 0\n")
    probe = ProcProbe(str(tmp_path))
    assert probe.peak_reset == "hwm" and "FileNotFoundError" in probe.peak_reset_error
    assert probe.reset_peak() is False
    assert probe.sample()["VmHWM"] == 60000 * 1024
    assert probe.statm()[1] == 12500 * os.sysconf("SC_PAGE_SIZE")
    probe.close()


def test_psutil_probe_reports_missing_not_zero() -> None:
    probe = PsutilProbe()
    s = probe.sample()
    assert s["VmRSS"] and s["VmRSS"] > 0
    assert s["RssAnon"] is None and s["RssFile"] is None and s["VmPeak"] is None
    assert probe.reset_peak() is False and probe.peak_reset == "hwm"
    buf = SeriesBuffer(probe.fields, 1)
    probe.sample_into(buf.data, 0)
    buf.filled = 1
    assert buf.series()["RssAnon"] == [None]
    assert buf.series()["VmRSS"][0] > 0  # type: ignore[operator]


def test_make_probe_prefers_proc_on_linux() -> None:
    probe = make_probe()
    assert probe.source == ("proc" if sys.platform.startswith("linux") else "psutil")
    probe.close()


def test_series_buffer_only_returns_filled_rows() -> None:
    buf = SeriesBuffer(("a", "b"), 3)
    buf.data[0:2] = array("q", [1, MISSING])
    buf.filled = 1
    assert buf.series() == {"a": [1], "b": [None]}


def test_journal_survives_a_torn_last_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "r.json.jsonl"
    j = Journal(path)
    j.write("start", fields=["VmRSS", "RssAnon"], probe={"source": "proc"}, applied=None)
    j.write("begin_stage", stage="compile")
    j.sample(0, [10, None], 0.5)
    j.sample(1, [11, 5], 0.25)
    j.close()
    with open(path, "a") as f:
        f.write('{"kind":"sample","i":2,"v":[1')  # the child died mid-write
    p = read_journal(path)
    assert p.series == {"VmRSS": [10, 11], "RssAnon": [None, 5]}
    assert p.latency == [0.5, 0.25] and p.last_stage == "compile"
