"""The environment fingerprint saved with every results file: what the numbers depend on.

``key`` is a short stable name of the parts that change memory behaviour (OS, machine, libc,
Python), meant for naming baseline files; the other fields are for people reading results.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from typing import Any


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def glibc_version() -> str | None:
    """``"2.36"`` under glibc, None elsewhere (musl, macOS, Windows)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        text = os.confstr("CS_GNU_LIBC_VERSION")
        if text and text.startswith("glibc "):
            return text.split()[1]
    with contextlib.suppress(OSError, AttributeError):
        fn = ctypes.CDLL(None).gnu_get_libc_version
        fn.restype = ctypes.c_char_p
        return fn().decode()
    return None


def numpy_blas() -> dict[str, Any]:
    """numpy's BLAS: name and version from its build config (numpy 1.26+), else what can be found."""
    try:
        import numpy as np

        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return {"name": blas.get("name"), "version": blas.get("version"),
                "openblas_config": blas.get("openblas configuration")}
    except Exception:  # noqa: BLE001  (older numpy prints instead of returning)
        return {"name": None, "version": None}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_version(package: str) -> str | None:
    """Debian package version (``dpkg-query``), None where there is no dpkg or no such package."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def allocator_table() -> list[dict[str, Any]]:
    from .allocators import KINDS, discover

    rows = []
    for found in discover():
        rows.append({"name": found.name, "installed": found.installed, "path": found.path, "how": found.how,
                     "package": KINDS[found.name].package,
                     "version": package_version(KINDS[found.name].package) if found.installed else None})
    return rows


def fingerprint(allocators: bool = True) -> dict[str, Any]:
    """Everything results depend on that is not in the cell spec."""
    from runtime.version import __version__ as runtime_version

    glibc = glibc_version()
    py = platform.python_version()
    fp: dict[str, Any] = {
        "os": platform.system(), "kernel": platform.release(), "machine": platform.machine(),
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "glibc": glibc,
        "python": py, "python_implementation": platform.python_implementation(), "python_executable": sys.executable,
        "numpy": _version("numpy"), "blas": numpy_blas(), "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"), "openvino": _version("openvino"), "runtime": runtime_version,
        "scipy": _version("scipy"),
        "memory_total": _mem_total(), "page_size": _page_size(),
    }
    if allocators:
        fp["allocators"] = allocator_table()
    libc = f"glibc{glibc}" if glibc else "nolibc"
    fp["key"] = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{fp['os']}-{fp['machine']}-{libc}-py{'.'.join(py.split('.')[:2])}")
    return fp


def _mem_total() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    return None


def _page_size() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE")
    return None
