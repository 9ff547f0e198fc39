"""The tokenizer directory as GetTokenizer streams it: one zip, in chunks, its
SHA-256 on the last chunk (common.proto's GetTokenizerChunk)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 64 * 1024
MAX_FILE_BYTES = 128 * 1024 * 1024


def zip_directory(directory: Path) -> bytes:
    """The regular files directly in `directory`, zipped (deterministic order)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in directory.iterdir() if p.is_file()):
            if file.stat().st_size <= MAX_FILE_BYTES:
                archive.write(file, file.name)
    return buffer.getvalue()


def chunks(data: bytes) -> Iterator[tuple[bytes, str]]:
    """(chunk, sha256) pairs: the digest of the whole zip on the last one only."""
    digest = hashlib.sha256(data).hexdigest()
    pieces = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    for index, piece in enumerate(pieces):
        yield piece, digest if index == len(pieces) - 1 else ""
