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
    """numpy's BLAS: name and version from its build config (numpy 1.26+), and the kernel it runs here.

    ``kernel`` is the core type the BLAS chose at load time (OpenBLAS sizes its GEMM buffers by it:
    SkylakeX, Haswell, Zen, ...), read through threadpoolctl; ``OPENBLAS_CORETYPE`` overrides it.
    """
    out: dict[str, Any] = {"name": None, "version": None, "kernel": blas_kernel()}
    try:
        import numpy as np

        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config.get("Build Dependencies", {}).get("blas", {})
        out.update(name=blas.get("name"), version=blas.get("version"),
                   openblas_config=blas.get("openblas configuration"))
    except Exception:  # noqa: BLE001  (older numpy prints instead of returning)
        pass
    return out


#: OpenBLAS kernels (OPENBLAS_CORETYPE) and the CPU flag each needs: forcing one the CPU lacks dies
#: on an illegal instruction, so ``--blas-kernels`` checks them first.
BLAS_KERNEL_FLAGS = {"SkylakeX": "avx512f", "Cooperlake": "avx512_bf16", "SapphireRapids": "amx_tile",
                     "Haswell": "avx2", "Zen": "avx2", "Sandybridge": "avx", "Nehalem": "sse4_2", "Prescott": "sse3"}


def check_blas_kernels(names: list[str] | tuple[str, ...], flags: set[str] | None = None) -> None:
    """Raise SpecError for a kernel name memgate does not know or this CPU cannot run."""
    from .spec import SpecError

    if flags is None:
        flags = cpu_flags()
    for name in names:
        need = BLAS_KERNEL_FLAGS.get(name)
        if need is None:
            raise SpecError(f"unknown BLAS kernel {name!r}; known: {', '.join(BLAS_KERNEL_FLAGS)}")
        if flags and need not in flags:
            raise SpecError(f"BLAS kernel {name} needs the CPU flag {need}, which this CPU lacks")


#: The kernels ``--blas-kernels auto`` records across: what machines of the CI kind pick (AVX-512
#: Xeons and Zen 4: SkylakeX; AVX2 Intel and Zen 1-3: Haswell; older: Sandybridge).
RECORDING_KERNELS = ("SkylakeX", "Haswell", "Sandybridge")


def runnable_kernels(names: tuple[str, ...] = RECORDING_KERNELS, flags: set[str] | None = None) -> list[str]:
    """The kernels of ``names`` this CPU can run."""
    have = cpu_flags() if flags is None else flags
    return [n for n in names if BLAS_KERNEL_FLAGS[n] in have]


def cpu_flags() -> set[str]:
    """The flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blas_kernel() -> str | None:
    """The BLAS kernel numpy runs on in this process (OpenBLAS's core name, e.g. ``SkylakeX``), or None."""
    try:
        import numpy  # noqa: F401  (loads the BLAS whose kernel is asked)
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                return str(info.get("architecture") or info.get("internal_api") or "") or None
    except Exception:  # noqa: BLE001  (no numpy, no threadpoolctl, or a BLAS it cannot name)
        return None
    return None


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
