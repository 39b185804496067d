"""Allocators and tunables: find the libraries, and build the environment a child runs with.

``glibc`` is the default and needs no preload; ``jemalloc``, ``tcmalloc`` and ``mimalloc`` are
system libraries loaded with LD_PRELOAD. Proof that the preload took effect is gathered inside
the child (``stress_tests.verify``): the dynamic loader ignores a preload it cannot open with
one line on stderr, which must never turn into a green result.

Tunables are ``KEY=VALUE`` pairs routed by name:

- glibc short names (``arena_max``, ``trim_threshold``, ``mmap_threshold``, ``top_pad``, ...)
  and any full ``glibc.*`` name -> GLIBC_TUNABLES (sizes may be written ``64KiB``);
- ``jemalloc.NAME`` -> MALLOC_CONF (``dirty_decay_ms``, ``background_thread``, ``narenas``...);
- ``tcmalloc.NAME`` -> ``TCMALLOC_NAME`` (``release_rate``, ``aggressive_decommit``...);
- ``mimalloc.NAME`` -> ``MIMALLOC_NAME`` (``purge_delay``, ``arena_eager_commit``...);
- ``env.NAME`` -> the environment variable NAME as given;
- other bare names go to the selected allocator (MALLOC_CONF for jemalloc, and so on).

A value of ``default`` leaves the key unset (handy in a matrix: ``arena_max=default,1``).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .units import parse_size


@dataclass(frozen=True)
class Kind:
    """What we know about one allocator family."""

    name: str
    sonames: tuple[str, ...]
    package: str  # Debian/Ubuntu
    marker: str  # basename prefix of its library in /proc/self/maps
    env_prefix: str = ""


KINDS: dict[str, Kind] = {
    "glibc": Kind("glibc", ("libc.so.6",), "libc6", "libc.so"),
    "jemalloc": Kind("jemalloc", ("libjemalloc.so.2", "libjemalloc.so"), "libjemalloc2", "libjemalloc"),
    "tcmalloc": Kind(
        "tcmalloc", ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so"),
        "libtcmalloc-minimal4", "libtcmalloc", "TCMALLOC_",
    ),
    "mimalloc": Kind("mimalloc", ("libmimalloc.so.2", "libmimalloc.so"), "libmimalloc2.0", "libmimalloc", "MIMALLOC_"),
}
ALLOCATORS = tuple(KINDS)
PRELOADED_MARKERS = tuple(k.marker for k in KINDS.values() if k.name != "glibc")

GLIBC_SHORT = (
    "arena_max", "arena_test", "trim_threshold", "mmap_threshold", "top_pad", "mmap_max", "tcache_count",
    "tcache_max", "tcache_unsorted_limit", "mxfast", "perturb", "check", "hugetlb",
)
_GLIBC_SIZES = frozenset({"trim_threshold", "mmap_threshold", "top_pad", "tcache_max", "mxfast"})
#: Environment variables that change how memory is allocated; recorded with every result.
_RECORDED = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF", "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_",
             "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "MALLOC_PERTURB_", "MALLOC_CHECK_",
             "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONMALLOC",
             "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: BLAS thread pools keep per-thread buffers; pinned to one thread unless the caller chose.
THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class AllocatorError(ValueError):
    """An unknown allocator or a tunable that cannot be applied."""


@dataclass(frozen=True)
class Found:
    """The result of looking for one allocator."""

    name: str
    path: str | None  # the library to preload; None for glibc and when missing
    installed: bool
    how: str  # "builtin", "ldconfig", "known path", "--allocator-path", "missing"

    @property
    def hint(self) -> str:
        return "" if self.installed else install_hint(self.name, self.path if self.how == "--allocator-path" else None)


def install_hint(name: str, path: str | None = None) -> str:
    if path is not None:
        return f"{name}: --allocator-path {path} does not exist"
    kind = KINDS[name]
    return (f"{name} is not installed; install it with `apt-get install {kind.package}` "
            f"(Debian/Ubuntu) or point --allocator-path at its library")


@functools.lru_cache(maxsize=1)
def ldconfig_cache() -> dict[str, str]:
    """soname -> path from ``ldconfig -p``, entries for this process's word size only."""
    want64 = sysconfig.get_config_var("SIZEOF_VOID_P") == 8
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            text = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        return parse_ldconfig(text, want64)
    return {}


def parse_ldconfig(text: str, want64: bool = True) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        left, arrow, path = line.partition("=>")
        if not arrow:
            continue
        soname, _, arch = left.strip().partition(" ")
        is64 = "64" in arch
        if is64 == want64:
            out.setdefault(soname, path.strip())
    return out


def _known_dirs() -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"] if multiarch else []
    return dirs + ["/usr/lib64", "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib"]


def find(name: str, path: str | None = None) -> Found:
    """Locate one allocator; ``path`` (from --allocator-path) wins over discovery."""
    if name not in KINDS:
        raise AllocatorError(f"unknown allocator {name!r}; choose one of {list(ALLOCATORS)}")
    if path is not None:
        return Found(name, path, os.path.exists(path), "--allocator-path")
    if name == "glibc":
        return Found(name, None, True, "builtin")
    cache = ldconfig_cache()
    for soname in KINDS[name].sonames:
        if soname in cache:
            return Found(name, cache[soname], True, "ldconfig")
    for d in _known_dirs():
        for soname in KINDS[name].sonames:
            candidate = os.path.join(d, soname)
            if os.path.exists(candidate):
                return Found(name, candidate, True, "known path")
    return Found(name, None, False, "missing")


def discover() -> list[Found]:
    return [find(name) for name in ALLOCATORS]


@functools.lru_cache(maxsize=1)
def glibc_tunables() -> dict[str, tuple[int | None, int | None]]:
    """Every tunable this glibc knows, with its (min, max), from ``ld.so --list-tunables`` (glibc 2.33+).

    Empty when that cannot be asked; glibc itself ignores unknown names and out-of-range
    values without a word, so this is the only place to catch them.
    """
    ld = find_ld_so()
    if ld is None:
        return {}
    try:
        text = subprocess.run([ld, "--list-tunables"], capture_output=True, text=True, timeout=10,
                              env={"PATH": os.environ.get("PATH", "")}, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_list_tunables(text)


def parse_list_tunables(text: str) -> dict[str, tuple[int | None, int | None]]:
    """``glibc.malloc.arena_max: 0x0 (min: 0x1, max: 0xff...)`` -> {name: (1, 0xff...)}."""
    out: dict[str, tuple[int | None, int | None]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if not name.startswith("glibc."):
            continue
        bounds = dict(re.findall(r"(min|max):\s*(\w+)", rest))
        out[name.strip()] = (_int_or_none(bounds.get("min")), _int_or_none(bounds.get("max")))
    return out


def _int_or_none(text: str | None) -> int | None:
    try:
        return None if text is None else int(text, 0)
    except ValueError:
        return None


def find_ld_so() -> str | None:
    """The dynamic loader this process was started with (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith("ld-linux") or os.path.basename(path).startswith("ld-musl"):
                    return path
    except OSError:
        pass
    return None


@dataclass
class Routed:
    """Tunables sorted into where they go."""

    glibc: dict[str, str] = field(default_factory=dict)  # full tunable name -> value
    malloc_conf: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)  # "where:name" -> value, for the record
    notes: list[str] = field(default_factory=list)


def parse_tunable(text: str) -> tuple[str, str]:
    """``"arena_max=1"`` -> ``("arena_max", "1")``."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip() or not value.strip():
        raise AllocatorError(f"tunable {text!r} is not KEY=VALUE (example: --tunable arena_max=1)")
    return key.strip(), value.strip()


def route_tunables(allocator: str, tunables: Sequence[tuple[str, str]]) -> Routed:
    """Decide where each tunable goes; unknown names are an error, never silently dropped."""
    r = Routed()
    known_glibc = glibc_tunables()
    for key, value in tunables:
        if value == "default":
            continue
        target, name = _target(allocator, key)
        if target == "glibc":
            if known_glibc and name not in known_glibc:
                raise AllocatorError(f"glibc has no tunable {name!r} (it would ignore it silently); "
                                     f"see `ld.so --list-tunables`")
            short = name.rsplit(".", 1)[-1]
            if name.startswith("glibc.malloc.") and short in _GLIBC_SIZES:
                value = str(_size(key, value))
            _check_range(name, value, known_glibc.get(name, (None, None)))
            r.glibc[name] = value
            if allocator != "glibc" and name.startswith("glibc.malloc."):
                r.notes.append(f"{name} tunes glibc's malloc, which {allocator} replaces")
        elif target == "jemalloc":
            r.malloc_conf[name] = value
        else:
            r.env[name] = value
        if target not in ("glibc", "env", allocator):
            r.notes.append(f"{key} applies to {target}, not to {allocator}")
        r.applied[f"{target}:{name}"] = value
    return r


def _target(allocator: str, key: str) -> tuple[str, str]:
    head, dot, rest = key.partition(".")
    if dot and head == "glibc":
        return "glibc", key
    if dot and head in ("jemalloc", "tcmalloc", "mimalloc"):
        return head, _env_name(head, rest)
    if dot and head == "env":
        return "env", rest
    if key in GLIBC_SHORT:
        return "glibc", f"glibc.malloc.{key}"
    if allocator in ("jemalloc", "tcmalloc", "mimalloc"):
        return allocator, _env_name(allocator, key)
    raise AllocatorError(
        f"unknown tunable {key!r} for {allocator}; glibc tunables: {', '.join(GLIBC_SHORT)}; "
        f"otherwise write glibc.NAME, jemalloc.NAME, tcmalloc.NAME, mimalloc.NAME or env.NAME"
    )


def _check_range(name: str, value: str, bounds: tuple[int | None, int | None]) -> None:
    number = _int_or_none(value)
    low, high = bounds
    if number is None:
        if low is not None or high is not None:
            raise AllocatorError(f"glibc tunable {name} takes an integer, got {value!r}")
        return
    if (low is not None and number < low) or (high is not None and number > high):
        raise AllocatorError(f"glibc would silently ignore {name}={value}: its range is [{low}, {high}]")


def _env_name(allocator: str, key: str) -> str:
    prefix = KINDS[allocator].env_prefix
    if not prefix:
        return key  # jemalloc: a MALLOC_CONF key as written
    return key if key.upper().startswith(prefix) else prefix + key.upper()


def _size(key: str, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as e:
        raise AllocatorError(f"tunable {key}: {e}") from e


def child_environment(found: Found, tunables: Sequence[tuple[str, str]],
                      base: Mapping[str, str]) -> tuple[dict[str, str], Routed]:
    """The child's environment: ``base`` plus the preload, tunables and thread pinning."""
    routed = route_tunables(found.name, tunables)
    env = dict(base)
    # Keep unrelated preloads (sanitizers, profilers) but never a second allocator.
    kept = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split()
            if not os.path.basename(p).startswith(PRELOADED_MARKERS)]
    if found.name != "glibc":
        if not found.path:
            raise AllocatorError(found.hint)
        kept.insert(0, found.path)
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    else:
        env.pop("LD_PRELOAD", None)
    if routed.glibc:
        current = dict(_pairs(env.get("GLIBC_TUNABLES", ""), ":"))
        current.update(routed.glibc)
        env["GLIBC_TUNABLES"] = ":".join(f"{k}={v}" for k, v in current.items())
    if routed.malloc_conf:
        ours = ",".join(f"{k}:{v}" for k, v in routed.malloc_conf.items())
        env["MALLOC_CONF"] = f"{env['MALLOC_CONF']},{ours}" if env.get("MALLOC_CONF") else ours  # later wins
    env.update(routed.env)
    for key, value in THREAD_DEFAULTS.items():
        env.setdefault(key, value)
    return env, routed


def recorded_env(env: Mapping[str, str], extra: Sequence[str] = ()) -> dict[str, str]:
    """The allocation-relevant part of an environment, for the result."""
    keys = set(_RECORDED) | set(extra)
    keys |= {k for k in env if k.startswith(("TCMALLOC_", "MIMALLOC_", "JE_MALLOC_"))}
    return {k: env[k] for k in sorted(keys) if k in env}


def _pairs(text: str, sep: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(sep):
        k, eq, v = item.partition("=")
        if eq and k:
            out.append((k, v))
    return out


def library_realpath(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
