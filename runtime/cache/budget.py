"""Keep a cache folder under a size budget: least recently used blobs go first.

Every compile that imports a blob touches it (its mtime is its last use), so the order is
least-recently-used, not oldest-written. Removing a blob that another process has mapped is
safe on POSIX: the mapping keeps the inode alive until it is closed, and a process that looks
the blob up after it is gone compiles again. Besides blobs, a prune removes digest entries
whose model file is gone and temporary files that a killed writer left (older than
``STALE_TMP_SECONDS``; a younger one may belong to a write in progress).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BLOB_SUFFIX = ".mgblob"
STALE_TMP_SECONDS = 3600.0


@dataclass
class PruneResult:
    """What a prune removed and what the blobs it kept take."""

    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    kept_bytes: int = 0


def touch(path: Path) -> None:
    """Mark a blob as used now (best effort: a read-only cache still works, in write order)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(directory: str | os.PathLike[str], max_bytes: int, *, keep: Iterable[Path] = ()) -> PruneResult:
    """Remove least recently used blobs until the rest take at most ``max_bytes``.

    Blobs in ``keep`` (the one just written or imported) stay even when they alone exceed the
    budget. Files that vanish meanwhile (another process pruning) are skipped, not errors.
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    folder = Path(directory)
    result = PruneResult()
    kept = {Path(p).resolve() for p in keep}
    blobs = []
    for path in _files(folder, f"*{BLOB_SUFFIX}"):
        try:
            st = path.stat()
        except OSError:
            continue
        blobs.append((st.st_mtime_ns, st.st_size, path))
    total = sum(size for _, size, _ in blobs)
    for _, size, path in sorted(blobs, key=lambda b: (b[0], str(b[2]))):
        if total <= max_bytes:
            break
        if path.resolve() in kept or not _unlink(path):
            continue
        total -= size
        result.removed.append(path)
        result.freed_bytes += size
    result.kept_bytes = total
    now = time.time()
    for pattern in (f"*{BLOB_SUFFIX}.*.tmp", "digests/*.json.*.tmp"):
        for path in _files(folder, pattern):
            try:
                if now - path.stat().st_mtime > STALE_TMP_SECONDS and _unlink(path):
                    result.removed.append(path)
            except OSError:
                continue
    for path in _files(folder, "digests/*.json"):
        if _model_gone(path) and _unlink(path):
            result.removed.append(path)
    return result


def _files(folder: Path, pattern: str) -> list[Path]:
    try:
        return sorted(folder.glob(pattern))
    except OSError:
        return []


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:  # gone already (another prune), or a read-only folder
        return False
    return True


def _model_gone(entry: Path) -> bool:
    """True when a digest entry names a model file that no longer exists (unreadable entries too)."""
    try:
        recorded = json.loads(entry.read_text())["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return not Path(str(recorded)).exists()
