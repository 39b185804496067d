"""Proof, from inside the child, that the allocator and tunables asked for are the ones in effect.

Two independent pieces of evidence for the allocator: its library is mapped in
/proc/self/maps, and ``malloc`` as the process resolves it (``dlsym(RTLD_DEFAULT)`` +
``dladdr``) lives in that library. For glibc: malloc lives in libc and no other allocator is
mapped. GLIBC_TUNABLES are read back through ``ld.so --list-tunables`` (same parser, same
environment), and jemalloc's MALLOC_CONF through ``mallctl("opt.*")``.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from .allocators import KINDS, PRELOADED_MARKERS, find_ld_so, library_realpath, route_tunables


@dataclass
class Verification:
    ok: bool
    message: str = ""
    evidence: list[str] = field(default_factory=list)
    version: str | None = None
    notes: list[str] = field(default_factory=list)


def mapped_libraries(maps_text: str | None = None) -> list[str]:
    """Paths of the shared objects mapped in this process, in first-mapped order."""
    if maps_text is None:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            maps_text = f.read()
    seen: dict[str, None] = {}
    for line in maps_text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/") and ".so" in os.path.basename(parts[5]):
            seen.setdefault(parts[5].strip(), None)
    return list(seen)


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def malloc_owner() -> str | None:
    """The file of the ``malloc`` this process calls, or None where dladdr is unavailable."""
    try:
        default = ctypes.CDLL(None)
        addr = ctypes.cast(default.malloc, ctypes.c_void_p).value
        info = _DlInfo()
        if not default.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) or not info.dli_fname:
            return None
        return os.fsdecode(info.dli_fname)
    except (OSError, AttributeError):
        return None


def _loaded(path: str) -> ctypes.CDLL | None:
    """A handle on an already loaded library; never loads a new one (RTLD_NOLOAD)."""
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None


def allocator_version(name: str, path: str | None) -> str | None:
    try:
        if name == "glibc":
            return (os.confstr("CS_GNU_LIBC_VERSION") or "").replace("glibc ", "") or None
        lib = _loaded(path) if path else None
        if lib is None:
            return None
        if name == "jemalloc":
            out = ctypes.c_char_p()
            size = ctypes.c_size_t(ctypes.sizeof(out))
            if lib.mallctl(b"version", ctypes.byref(out), ctypes.byref(size), None, ctypes.c_size_t(0)) == 0:
                return (out.value or b"").decode()
        elif name == "tcmalloc":
            lib.tc_version.restype = ctypes.c_char_p
            return (lib.tc_version(None, None, None) or b"").decode()
        elif name == "mimalloc":
            v = int(lib.mi_version())
            return f"{v // 100}.{v // 10 % 10}.{v % 10}"
    except (AttributeError, OSError, ValueError):
        return None
    return None


def verify_allocator(name: str, path: str | None, maps_text: str | None = None) -> Verification:
    """Is ``name`` (loaded from ``path``) the allocator of this process? Never green on doubt."""
    if name not in KINDS:
        return Verification(False, f"unknown allocator {name!r}")
    try:
        libs = mapped_libraries(maps_text)
    except OSError as e:
        if name == "glibc":  # nothing was preloaded: the system allocator is all there can be
            return Verification(True, "", [f"no /proc/self/maps ({e}); nothing preloaded: the system allocator"])
        return Verification(False, f"cannot read /proc/self/maps to verify {name}: {e}")
    owner = malloc_owner() if maps_text is None else None
    others = [p for p in libs if os.path.basename(p).startswith(PRELOADED_MARKERS)]
    evidence = [f"malloc resolves to {owner}"] if owner else ["dladdr unavailable: checked mappings only"]
    if name == "glibc":
        if others:
            return Verification(False, f"glibc was asked for but {', '.join(others)} is mapped "
                                       f"(an LD_PRELOAD inherited from the caller?)", evidence)
        if owner and not os.path.basename(owner).startswith(("libc.so", "libc-")):
            return Verification(False, f"glibc was asked for but malloc resolves to {owner}", evidence)
        evidence.append("no other allocator mapped")
        return Verification(True, "", evidence, allocator_version(name, None))
    want = library_realpath(path)
    mapped = [p for p in libs if library_realpath(p) == want]
    if not mapped:
        return Verification(False, f"LD_PRELOAD of {path} did not take effect: {name} is not mapped in the child "
                                   f"(the dynamic loader skips a preload it cannot load; see stderr)", evidence)
    evidence.append(f"mapped: {mapped[0]}")
    if owner is not None and library_realpath(owner) != want:
        return Verification(False, f"{path} is mapped but malloc resolves to {owner}, not to {name}", evidence)
    return Verification(True, "", evidence, allocator_version(name, path))


def verify_tunables(allocator: str, path: str | None, tunables: list[tuple[str, str]],
                    env: Mapping[str, str]) -> Verification:
    """Read back what can be read back; say plainly what cannot."""
    routed = route_tunables(allocator, tunables)
    v = Verification(True)
    if routed.glibc:
        _check_glibc(routed.glibc, env, v)
    if routed.malloc_conf and allocator == "jemalloc":
        _check_jemalloc(routed.malloc_conf, path, v)
    for name in routed.env:
        if name.startswith(("TCMALLOC_", "MIMALLOC_")):
            v.notes.append(f"{name} set; {allocator} does not report whether it read it")
    v.notes.extend(routed.notes)
    return v


def _check_glibc(wanted: Mapping[str, str], env: Mapping[str, str], v: Verification) -> None:
    ld = find_ld_so()
    if ld is None:
        v.notes.append("GLIBC_TUNABLES set; no ld.so found to read them back")
        return
    try:
        text = subprocess.run([ld, "--list-tunables"], capture_output=True, text=True, timeout=10, check=False,
                              env={"GLIBC_TUNABLES": env.get("GLIBC_TUNABLES", "")}).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        v.notes.append(f"GLIBC_TUNABLES set; ld.so --list-tunables failed: {e}")
        return
    seen = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if rest:
            seen[name.strip()] = rest.split()[0]
    if not seen:
        v.notes.append("GLIBC_TUNABLES set; this glibc cannot list tunables (before 2.33)")
        return
    for name, value in wanted.items():
        got = seen.get(name)
        if got is None or _as_int(got) != _as_int(value):
            v.ok = False
            v.message = (f"glibc did not apply {name}={value} (ld.so reads it as {got}; "
                         f"out of range or unknown values are ignored silently)")
            return
        v.evidence.append(f"{name}={got} (read back with ld.so --list-tunables)")


def _check_jemalloc(conf: Mapping[str, str], path: str | None, v: Verification) -> None:
    lib = _loaded(path) if path else None
    if lib is None:
        v.notes.append("MALLOC_CONF set; jemalloc not loaded, nothing to read back")
        return
    for key, value in conf.items():
        buf = ctypes.create_string_buffer(8)
        for width in (8, 4, 1):  # mallctl wants the exact size of the option's type
            size = ctypes.c_size_t(width)
            if lib.mallctl(f"opt.{key}".encode(), buf, ctypes.byref(size), None, ctypes.c_size_t(0)) == 0:
                break
        else:
            v.ok = False
            v.message = f"jemalloc has no option {key!r} (it ignores unknown MALLOC_CONF pairs with a warning)"
            return
        raw = buf.raw[:size.value]
        if value in ("true", "false"):
            got = "true" if raw[0] else "false"
        elif _as_int(value) is not None and size.value in (4, 8):
            got = str(int.from_bytes(raw, "little", signed=True))
        else:
            got = ctypes.cast(buf, ctypes.POINTER(ctypes.c_char_p))[0].decode()
        if got != value and _as_int(got) != _as_int(value):
            v.ok = False
            v.message = f"jemalloc did not apply {key}:{value} (opt.{key} is {got}; see its stderr warning)"
            return
        v.evidence.append(f"jemalloc opt.{key}={got} (read back with mallctl)")


def _as_int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None
