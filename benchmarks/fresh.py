"""Run a measurement in a fresh Python process and get its figures back as JSON.

Memory figures only mean something in a process that measured nothing else before:
every benchmark script here sends a small program to ``run_fresh``; the program calls
``status()`` to read /proc/self/status, ``reset_peak()`` to restart VmHWM, and
``emit(**figures)`` once at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "@@FRESH@@"

PRELUDE = textwrap.dedent(f'''
    import json, os, sys, time
    def status():
        out = {{}}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[key] = int(parts[0]) * 1024
        return out
    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False
    def feeds_for(compiled, seed=0):
        """Deterministic feeds from the compiled model's ports (ints small: token ids, masks)."""
        import numpy as np
        rng = np.random.default_rng(seed)
        out = {{}}
        for p in compiled.inputs:
            shape = [d if isinstance(d, int) else 1 for d in p.shape]
            if p.dtype.kind == "f":
                out[p.name] = rng.standard_normal(shape).astype(p.dtype)
            elif "mask" in p.name:
                out[p.name] = np.ones(shape, p.dtype)
            else:
                out[p.name] = rng.integers(0, 100, shape).astype(p.dtype)
        return out
    def emit(**figures):
        print("{MARK}" + json.dumps(figures), flush=True)
''')


def run_fresh(code: str, *, env: dict[str, str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``code`` (after the prelude) in a new interpreter; return what it emitted."""
    child_env = dict(os.environ)
    child_env.setdefault("OPENBLAS_NUM_THREADS", "1")
    child_env.setdefault("OMP_NUM_THREADS", "1")
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), child_env.get("PYTHONPATH", "")]))
    child_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True,
                          env=child_env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def publish_table(headers: list[str], rows: list[list[Any]], out: Path | None) -> str:
    """Print the Markdown table and, given ``out``, write it there whole (temporary file, fsync, rename)."""
    table = markdown_table(headers, rows)
    print(table)
    if out is not None:
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(table + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    return table


def save_model(name: str, folder: Path, **options: Any) -> Path:
    """Write a zoo model to ``folder`` once (children then read a file, not a generator)."""
    from runtime import zoo

    folder.mkdir(parents=True, exist_ok=True)
    suffix = "_".join(f"{k}{v}" for k, v in sorted(options.items()))
    path = folder / f"{name.replace(':', '_')}{'_' + suffix if suffix else ''}.onnx"
    if not path.exists():
        zoo.save(name, path, **options)
    return path
