"""The content-addressed blob store: verified on write and read, atomic, size-capped."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from node.blobs.store import BlobError, BlobStore


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _store(tmp_path: Path, max_bytes: int = 1000) -> BlobStore:
    return BlobStore(tmp_path, max_bytes)


def test_a_blob_is_named_by_its_digest_and_reads_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    digest, size = store.put_bytes(b"hello")
    assert (digest, size) == (_sha(b"hello"), 5)
    path = store.verified(digest)
    assert path == tmp_path / "blobs" / "sha256" / digest
    assert path.read_bytes() == b"hello"
    assert store.digests() == {digest}


def test_a_changed_file_is_found_deleted_and_reported(tmp_path: Path) -> None:
    store = _store(tmp_path)
    reported: list[str] = []
    store.on_corrupt.append(reported.append)
    digest, _ = store.put_bytes(b"original")
    store.path(digest).write_bytes(b"tampered")
    assert store.verified(digest) is None
    assert not store.has(digest)
    assert reported == [digest]
    assert store.verified(_sha(b"absent")) is None
    assert reported == [digest]  # a missing blob is not a corrupt one


def test_over_the_limit_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, max_bytes=10)
    with pytest.raises(BlobError, match="larger than the limit of 10 bytes"):
        store.put_bytes(b"x" * 11)
    with pytest.raises(BlobError, match="limit of 3 bytes"), store.writer(size=3) as writer:
        writer.write(b"abcd")  # a record's size caps a fetch below the store's limit
    assert store.digests() == set()
    assert list(store.temp_dir.iterdir()) == []


def test_wrong_bytes_for_a_digest_never_become_visible(tmp_path: Path) -> None:
    store = _store(tmp_path)
    wanted = _sha(b"wanted")
    with pytest.raises(BlobError, match="digest mismatch"), store.writer(wanted) as writer:
        writer.write(b"something else")
        writer.commit()
    assert not store.has(wanted) and store.digests() == set()
    assert list(store.temp_dir.iterdir()) == []


def test_a_write_cut_short_leaves_no_blob(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(RuntimeError), store.writer(_sha(b"whole")) as writer:
        writer.write(b"who")
        raise RuntimeError("the peer hung up")
    assert store.digests() == set() and list(store.temp_dir.iterdir()) == []


def test_parts_left_by_a_crash_are_cleared_at_start(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store.temp_dir / "part-x").write_bytes(b"half")
    store = _store(tmp_path)
    assert list(store.temp_dir.iterdir()) == []


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "a" * 63, "", "a" * 64 + "/"])
def test_only_a_digest_names_a_file(tmp_path: Path, digest: str) -> None:
    with pytest.raises(BlobError, match="not a sha256 digest"):
        _store(tmp_path).path(digest)


def test_put_file_copies_in_chunks(tmp_path: Path) -> None:
    source = tmp_path / "big"
    data = bytes(range(256)) * 9000  # over two read chunks
    source.write_bytes(data)
    store = BlobStore(tmp_path / "data", max_bytes=len(data))
    assert store.put_file(source) == (_sha(data), len(data))
