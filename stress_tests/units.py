"""Human sizes in and out: one parser and one formatter for the whole harness.

A leaf module: it imports nothing from the package.
"""

from __future__ import annotations

import re

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1024**4, "tb": 1000**4, "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes from ``"4096"``, ``"64KiB"``, ``"1.5 MiB"``, ``"2M"`` (bare K/M/G are binary); hex passes through."""
    if isinstance(text, int):
        return text
    raw = text.strip()
    if raw.lower().startswith("0x"):
        return int(raw, 16)
    m = _SIZE.match(raw)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 64KiB, 1.5MiB, 2G)")
    return int(round(float(m.group(1)) * _UNITS[m.group(2).lower()]))


def format_size(n: float | None, *, signed: bool = False) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"n/a"``; ``signed`` prefixes + for growth."""
    if n is None:
        return "n/a"
    sign = "-" if n < 0 else ("+" if signed else "")
    v = abs(float(n))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


#: Series counted in objects, not bytes (``sys.getallocatedblocks``).
COUNTED = frozenset({"PyBlocks"})


def format_metric(metric: str, n: float | None, *, signed: bool = False) -> str:
    """A value of series ``metric``: a size, or ``+2.0 blocks`` for the counted ones."""
    if metric not in COUNTED or n is None:
        return format_size(n, signed=signed)
    return f"{n:+.1f} blocks" if signed else f"{n:.1f} blocks"
