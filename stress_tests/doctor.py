"""``memgate doctor``: what this machine offers the harness, each allocator proven in a child."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import timeit
from typing import Any

from .allocators import KINDS, Found
from .environment import fingerprint


def verify_in_child(found: Found, timeout: float = 60.0) -> tuple[bool, str]:
    """Start a child with this allocator preloaded and ask it what it runs on."""
    from .runner import child_env
    from .spec import CellSpec

    env = child_env(CellSpec(allocator=found.name, allocator_path=found.path), found)
    try:
        out = subprocess.run([sys.executable, "-m", "stress_tests.worker", "--verify", found.name, found.path or ""],
                             env=env, capture_output=True, text=True, timeout=timeout, check=False)
        report = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return False, f"verification child failed: {e}"
    if report["ok"]:
        owner = report["evidence"][0].rsplit(" ", 1)[-1] if report["evidence"] else "?"
        short = str(report.get("heap", "")).split("(")[0].split(" + ")[0].strip()  # the call, not its details
        heap = f"; heap counter: {short}" if short else ""
        return True, f"yes (malloc from {os.path.basename(owner)}{heap})"
    return False, "NO: " + report["message"]


def probe_cost() -> str:
    from .probes import SeriesBuffer, make_probe

    probe = make_probe()
    buf = SeriesBuffer(probe.fields, 1)
    n = 2000
    per = timeit.timeit(lambda: probe.sample_into(buf.data, 0), number=n) / n
    probe.close()
    return f"{probe.source}, {per * 1e6:.0f} µs per sample"


def diagnose(require_allocators: bool = False) -> dict[str, Any]:
    from .probes import make_probe

    fp = fingerprint()
    problems: list[str] = []
    fatal = False
    rows = []
    for row in fp["allocators"]:
        row = dict(row)
        if row["installed"]:
            ok, text = verify_in_child(Found(row["name"], row["path"], True, row["how"]))
            row["verified"] = text
            if not ok:
                problems.append(f"{row['name']}: preloading it does not take effect ({text})")
                fatal = True
        else:
            package = KINDS[row["name"]].package
            problems.append(f"{row['name']} is not installed; install it with `apt-get install {package}`")
            fatal = fatal or require_allocators
        rows.append(row)
    try:
        probe = make_probe()
        peak = probe.peak_reset if probe.peak_reset == "clear_refs" else (
            f"unavailable ({getattr(probe, 'peak_reset_error', '')}); stage peaks are the process high-water mark")
        probe.close()
        cost = probe_cost()
    except Exception as e:  # noqa: BLE001  (no /proc and no psutil: the harness cannot measure)
        peak, cost, fatal = "unavailable", f"no probe: {e}", True
        problems.append(f"no memory probe works here: {e}")
    try:
        from runtime import zoo

        zoo_text = f"{len(zoo.names())} models ({', '.join(zoo.names()[:8])}, ...)"
    except ImportError as e:
        zoo_text = f"not available ({e})"
    from .adapters import discover as discover_runtimes

    runtimes, runtime_problems = discover_runtimes()
    problems += runtime_problems
    return {"fingerprint": fp, "allocators": rows, "probe": cost, "peak_reset": peak, "zoo": zoo_text,
            "runtimes": [dataclasses.asdict(r) for r in runtimes], "problems": problems, "fatal": fatal}
