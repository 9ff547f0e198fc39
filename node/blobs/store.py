"""A content-addressed file store under the data dir: `<data-dir>/blobs/sha256/<hex>`.

A blob becomes visible only complete and verified: it is written to a temp file
beside the store, its SHA-256 checked against the digest it is meant to have, then
renamed into place (atomic on one file system). Every read hashes the file again,
so a file changed on disk is found, deleted and reported (`on_corrupt`) instead of
being served or loaded. Files are read and hashed in chunks, never whole.

Every node has a data dir (the default is ./meshgate-data/NODE), so there is no
temp-dir fallback: the blobs live beside the Raft journal, private to the node's user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Final

from mesh.commands import is_sha256

log = logging.getLogger(__name__)

CHUNK: Final = 1024 * 1024


class BlobError(ValueError):
    """A blob refused: over the size limit, or not the bytes its digest names."""


def check_digest(digest: str) -> str:
    """The digest, if it names a blob (64 lower-case hex digits); never a path."""
    if not is_sha256(digest):
        raise BlobError(f"{digest[:80]!r} is not a sha256 digest (64 lower-case hex digits)")
    return digest


class BlobWriter:
    """One blob being written: hashed and size-checked as the chunks arrive."""

    def __init__(self, store: BlobStore, expected: str | None, limit: int) -> None:
        self._store = store
        self._expected = expected
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        fd, name = tempfile.mkstemp(dir=store.temp_dir, prefix="part-")
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._temp = Path(name)
        self.committed = False

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise BlobError(f"larger than the limit of {self._limit} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> str:
        """Verify the digest, then make the blob visible; returns its digest."""
        digest = self._hash.hexdigest()
        if self._expected is not None and digest != self._expected:
            raise BlobError(f"digest mismatch: the bytes hash to {digest}, not {self._expected}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._store.path(digest))
        self.committed = True
        return digest

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, data_dir: Path, max_bytes: int) -> None:
        self.root = data_dir / "blobs" / "sha256"
        self.temp_dir = data_dir / "blobs" / "tmp"
        self.max_bytes = max_bytes
        self.on_corrupt: list[Callable[[str], None]] = []  # told of a blob found changed
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Parts left by a run that stopped mid-write are never complete blobs.
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, digest: str) -> Path:
        return self.root / check_digest(digest)

    def has(self, digest: str) -> bool:
        """Present (not verified: `verified` hashes it)."""
        return self.path(digest).is_file()

    def digests(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if is_sha256(p.name)}

    @contextlib.contextmanager
    def writer(self, expected: str | None = None, size: int | None = None) -> Iterator[BlobWriter]:
        """Write one blob: committed when the block ends well, else its part removed.
        `size`: the most bytes it may have (the store's limit caps it anyway)."""
        limit = self.max_bytes if size is None else min(size, self.max_bytes)
        writer = BlobWriter(self, expected, limit)
        try:
            yield writer
        finally:
            if not writer.committed:
                writer.abort()

    def put_file(self, source: Path) -> tuple[str, int]:
        """Copy a file in (read in chunks); its digest and size."""
        with source.open("rb") as file, self.writer() as writer:
            while chunk := file.read(CHUNK):
                writer.write(chunk)
            return writer.commit(), writer.size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(), writer.size

    def verified(self, digest: str) -> Path | None:
        """The blob's path if it is here and still hashes to its digest. A changed file is
        deleted, logged and reported, so that it is fetched again rather than used."""
        path = self.path(digest)
        try:
            actual = file_digest(path)
        except FileNotFoundError:
            return None
        if actual == digest:
            return path
        log.warning("blob %s changed on disk (now hashes to %s): deleted", digest, actual)
        path.unlink(missing_ok=True)
        for hook in self.on_corrupt:
            hook(digest)
        return None

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def remove_unused(self, digests: Iterable[str], in_use: set[str]) -> list[str]:
        """Remove those of `digests` no record uses (`in_use`: ControlState.digests_in_use,
        which knows every kind of record that names blobs); the ones removed."""
        gone = [d for d in digests if d not in in_use]
        for digest in gone:
            self.remove(digest)
        return gone


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
