"""Tunables profiles and the environment key that names a baseline file.

A **profile** is a named set of allocator settings, spelled per allocator so that one name means
the same intent everywhere (the tox factors and the CI matrix use these names):

- ``default``: nothing set.
- ``arena1``: bound the per-thread state. glibc ``arena_max=1``; jemalloc ``narenas:1``; tcmalloc
  has no arena count, so it gets its nearest knob, a 1 MiB bound on all thread caches together
  (``TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES``; threads/mobilenetv2 with 4 threads: steady RssAnon
  25.1-25.3 MiB against 26.1-26.2 MiB without, while glibc's ``arena_max=1``, which a preloaded
  tcmalloc never reads, gave 26.1-26.3). mimalloc has no knob that bounds its per-thread heaps
  (2.0.9's options tune commit, reset and huge pages), so ``arena1`` is not defined for it: a
  ``mimalloc-arena1`` run would be a copy of ``mimalloc-default``.
- ``trim``: give freed memory back at once. ``malloc_trim(0)`` after every iteration (the cell's
  ``trim`` flag) plus jemalloc ``dirty_decay_ms:0,muzzy_decay_ms:0``, tcmalloc
  ``TCMALLOC_AGGRESSIVE_DECOMMIT=true``, mimalloc ``MIMALLOC_RESET_DELAY=0``.

The **environment key** names the baseline file ``baselines/<key>.json``: everything the
numbers depend on that is not part of a cell's own key (pipeline, model, mode, runtime)::

    <os>-<arch>-py<major.minor>-numpy<major>-<allocator>-<profile>
    linux-x86_64-py3.11-numpy2-jemalloc-arena1

Settings that match no profile are spelled out instead of a profile name (sorted
``key=value`` pairs joined by ``+``, then ``+trim`` when the trim flag is on).

``MEMGATE_ALLOCATOR`` and ``MEMGATE_TUNABLES`` (a profile name or ``KEY=VALUE,...``) select the
allocator and settings of the pytest suites; the tox factors set them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .allocators import ALLOCATORS, parse_tunable

Tunables = tuple[tuple[str, str], ...]

PROFILE_NAMES = ("default", "arena1", "trim")
_PROFILES: dict[str, dict[str, tuple[Tunables, bool]]] = {
    "default": {a: ((), False) for a in ALLOCATORS},
    "arena1": {
        "glibc": ((("arena_max", "1"),), False),
        "jemalloc": ((("jemalloc.narenas", "1"),), False),
        "tcmalloc": ((("tcmalloc.max_total_thread_cache_bytes", "1048576"),), False),
    },
    "trim": {
        "glibc": ((), True),
        "jemalloc": ((("jemalloc.dirty_decay_ms", "0"), ("jemalloc.muzzy_decay_ms", "0")), True),
        "tcmalloc": ((("tcmalloc.aggressive_decommit", "true"),), True),
        "mimalloc": ((("mimalloc.reset_delay", "0"),), True),
    },
}
ENV_ALLOCATOR, ENV_TUNABLES = "MEMGATE_ALLOCATOR", "MEMGATE_TUNABLES"


class ProfileError(ValueError):
    """An unknown profile or allocator name."""


def settings(profile: str, allocator: str) -> tuple[Tunables, bool]:
    """(tunables, trim flag) of ``profile`` for ``allocator``."""
    if profile not in _PROFILES:
        raise ProfileError(f"unknown tunables profile {profile!r}; choose from {', '.join(PROFILE_NAMES)}")
    if allocator not in ALLOCATORS:
        raise ProfileError(f"unknown allocator {allocator!r}; choose from {', '.join(ALLOCATORS)}")
    if allocator not in _PROFILES[profile]:
        raise ProfileError(f"profile {profile!r} is not defined for {allocator}: it has no such knob "
                           f"(see stress_tests/profiles.py); profiles for it: "
                           f"{', '.join(p for p in PROFILE_NAMES if defined(p, allocator))}")
    return _PROFILES[profile][allocator]


def defined(profile: str, allocator: str) -> bool:
    """Whether ``profile`` means something for ``allocator`` (``arena1`` does not for mimalloc)."""
    return allocator in _PROFILES.get(profile, {})


def _canonical(tunables: Sequence[tuple[str, str]]) -> Tunables:
    return tuple(sorted((k, v) for k, v in tunables if v != "default"))


def profile_of(allocator: str, tunables: Sequence[tuple[str, str]], trim: bool = False) -> str:
    """The profile name these settings match, else the settings spelled out (``k=v+k=v[+trim]``)."""
    mine = _canonical(tunables)
    for name, per in _PROFILES.items():
        want = per.get(allocator)
        if want is not None and _canonical(want[0]) == mine and want[1] == trim:
            return name
    parts = [f"{k}={v}" for k, v in mine] + (["trim"] if trim else [])
    return "+".join(parts) or "default"


def platform_key(fingerprint: Mapping[str, Any]) -> str:
    """``linux-x86_64-py3.11-numpy2``: the part of the key a results file's fingerprint gives."""
    python = ".".join(str(fingerprint.get("python") or "0.0").split(".")[:2])
    numpy = str(fingerprint.get("numpy") or "0").split(".")[0]
    return _clean(f"{fingerprint.get('os') or 'unknown'}-{fingerprint.get('machine') or 'unknown'}"
                  f"-py{python}-numpy{numpy}").lower()


def env_key(fingerprint: Mapping[str, Any], allocator: str, tunables: Sequence[tuple[str, str]] = (),
            trim: bool = False) -> str:
    """The baseline file's key: platform, allocator and profile (see the module docstring)."""
    return f"{platform_key(fingerprint)}-{allocator}-{_clean(profile_of(allocator, tunables, trim))}"


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text)


def parse_profile(text: str, allocator: str) -> tuple[Tunables, bool]:
    """A profile name or ``KEY=VALUE,...`` (``trim`` may be one of the items) -> (tunables, trim)."""
    text = text.strip()
    if not text or text in _PROFILES:
        return settings(text or "default", allocator)
    items = [t.strip() for t in text.split(",") if t.strip()]
    trim = "trim" in items
    try:
        pairs = tuple(parse_tunable(t) for t in items if t != "trim")
    except ValueError as e:
        raise ProfileError(f"{ENV_TUNABLES}={text!r}: {e}; or name a profile: {', '.join(PROFILE_NAMES)}") from e
    return pairs, trim


def from_environment(environ: Mapping[str, str] | None = None) -> tuple[str, Tunables, bool]:
    """(allocator, tunables, trim) chosen by ``MEMGATE_ALLOCATOR`` / ``MEMGATE_TUNABLES`` (glibc, default)."""
    env = os.environ if environ is None else environ
    allocator = env.get(ENV_ALLOCATOR, "").strip() or "glibc"
    if allocator not in ALLOCATORS:
        raise ProfileError(f"{ENV_ALLOCATOR}={allocator!r}: choose from {', '.join(ALLOCATORS)}")
    tunables, trim = parse_profile(env.get(ENV_TUNABLES, ""), allocator)
    return allocator, tunables, trim
