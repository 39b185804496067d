"""Digests of model files remembered by their stat signature, so a cache hit by path reads nothing.

``core.compile_model(path)`` with a ``cache_dir`` keys the blob by the SHA-256 of the model file.
Hashing means reading the whole file: 168 MiB for U^2-Net, longer than the rest of a cache hit.
Like git's index, this module remembers the digest of a file together with its signature
(device, inode, size, mtime and ctime in nanoseconds) in ``<cache_dir>/digests/``; when the
signature is unchanged the file is not read again.

Why a signature is enough: any write, truncation, rename over the path or ``touch`` gives the
path another inode or a new ctime, and ctime cannot be set back from user space. The one gap is a
change within the same clock tick as the change the digest was taken after ("racy" files, as git
calls them): a digest is therefore only remembered when the file's last change is at least
``RACY_SECONDS`` older than the moment it was hashed, and only when the signature did not move
while it was read.  ``cache_verify="full"`` bypasses the index and hashes every time.
Entries are small JSON files written atomically; an unreadable or malformed entry is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ModelLoadError
from ..frontend.loader import digest_of, read_file
from .atomic import atomic_write

RACY_SECONDS = 2.0


@dataclass(frozen=True)
class Signature:
    """What changes whenever a file's content can have changed."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Signature:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileDigests:
    """The digest index of one cache folder."""

    def __init__(self, cache_dir: Path) -> None:
        self.directory = cache_dir / "digests"

    def _entry(self, path: Path) -> Path:
        return self.directory / (hashlib.sha256(str(path).encode()).hexdigest()[:40] + ".json")

    def lookup(self, path: Path, sig: Signature) -> str | None:
        """The remembered SHA-256 of ``path`` (absolute) if its signature is still ``sig``."""
        try:
            entry = json.loads(self._entry(path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("path") != str(path):
            return None
        try:
            if Signature(**entry["signature"]) != sig:
                return None
        except (KeyError, TypeError):
            return None
        digest = entry.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            return None
        return digest

    def forget(self, path: Path) -> None:
        """Drop what is remembered of ``path`` (absolute): its next lookup hashes the file."""
        try:
            self._entry(path).unlink()
        except OSError:
            pass

    def record(self, path: Path, sig: Signature, digest: str, hashed_at_ns: int) -> bool:
        """Remember ``digest`` for ``path`` unless the file changed too recently to trust its signature."""
        if hashed_at_ns - max(sig.mtime_ns, sig.ctime_ns) < RACY_SECONDS * 1e9:
            return False
        body = json.dumps({"path": str(path), "signature": asdict(sig), "sha256": digest}, sort_keys=True).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(self._entry(path), lambda f: f.write(body))
        except OSError:
            return False  # the blob's own write warns about an unwritable cache folder
        return True


def stat_file(path: Path) -> Signature:
    """The signature of a model file, with the loader's typed errors."""
    try:
        return Signature.of(path.stat())
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: no such model file") from e
    except OSError as e:
        raise ModelLoadError(f"{path}: cannot read: {e}") from e


def digest_file(path: Path, index: FileDigests | None) -> tuple[bytes | None, str]:
    """(the file's bytes when they had to be read, else None; the file's SHA-256).

    With an ``index`` an unchanged file is not read; a file that is read is remembered.
    """
    path = path.resolve()
    before = stat_file(path)
    if index is not None:
        digest = index.lookup(path, before)
        if digest is not None:
            return None, digest
    hashed_at = time.time_ns()
    data = read_file(path)
    digest = digest_of(data)
    if index is not None and stat_file(path) == before:
        index.record(path, before, digest, hashed_at)
    return data, digest
