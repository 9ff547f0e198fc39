"""The node's gRPC worker parts that need no engine: addresses, credentials as
metadata, failure phrases, the tokenizer zip's unpacking, where a tokenizer comes
from, and the load routing reads."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from node.blobs.store import BlobStore
from node.grpc_echo.artifacts import chunks
from node.grpc_workers.calls import GrpcCallFailed
from node.grpc_workers.channel import address, auth_metadata
from node.grpc_workers.discover import (
    TokenizerChoice,
    TokenizerUnavailable,
    choose_tokenizer,
)
from node.grpc_workers.tokenizer_files import TokenizerFetchFailed, fetch, unpack, unpacked
from node.grpc_workers.workers import GrpcSettings, GrpcWorkers
from node.text.resolve import NoCatalog
from node.text.tokenizer import TextTokenizer
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.pool import WorkerPool
from node.workers.worker import Worker


def test_addresses_and_metadata() -> None:
    assert address("grpc://h.example:50051") == "h.example:50051"
    assert address("grpcs://h.example") == "h.example:443"
    assert address("grpc://[::1]:7/") == "[::1]:7"
    assert auth_metadata({"Authorization": "Bearer k"}) == (("authorization", "Bearer k"),)


def test_failures_are_fixed_phrases() -> None:
    assert str(GrpcCallFailed("GetLoads", grpc.StatusCode.UNAVAILABLE)) == (
        "GetLoads did not answer: connection refused or unreachable"
    )
    assert str(GrpcCallFailed("Abort", grpc.StatusCode.DEADLINE_EXCEEDED)) == (
        "Abort did not answer in time"
    )
    assert str(GrpcCallFailed("HealthCheck", grpc.StatusCode.UNAUTHENTICATED)) == (
        "HealthCheck answered UNAUTHENTICATED"
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_unpack_keeps_plain_top_level_files_only(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "data", 1 << 20)
    members = {"tokenizer.json": b"{}", "../evil": b"x", "sub/inner": b"x", ".hidden": b"x"}
    digest, _ = store.put_bytes(_zip(members))
    root = tmp_path / "unpacked"
    assert unpacked(store, digest, root) is None
    directory = unpack(store, digest, root)
    assert sorted(p.name for p in directory.iterdir()) == [".complete", "tokenizer.json"]
    assert not (tmp_path / "evil").exists()
    assert unpacked(store, digest, root) == directory == unpack(store, digest, root)


def test_unpack_refuses_what_is_not_a_small_zip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "data", 1 << 20)
    not_zip, _ = store.put_bytes(b"plain bytes")
    with pytest.raises(TokenizerFetchFailed, match="did not send a zip"):
        unpack(store, not_zip, tmp_path / "u")
    many, _ = store.put_bytes(_zip({f"f{i}": b"" for i in range(65)}))
    with pytest.raises(TokenizerFetchFailed, match="over 64 members"):
        unpack(store, many, tmp_path / "u")
    assert list((tmp_path / "u").iterdir()) == []  # nothing half-unpacked is left


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    """The zip with its first central-directory entry's bytes at `offset` replaced."""
    at = data.index(b"PK\x01\x02") + offset
    return data[:at] + value + data[at + len(value) :]


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (8, b"\x01\x00", "RuntimeError"),  # the member says it is encrypted
        (10, b"\x63\x00", "NotImplementedError"),  # compression method 99
    ],
)
def test_unpack_turns_any_bad_member_into_a_fetch_failure(
    tmp_path: Path, offset: int, value: bytes, reason: str
) -> None:
    store = BlobStore(tmp_path / "data", 1 << 20)
    digest, _ = store.put_bytes(_patched(_zip({"tokenizer.json": b"{}"}), offset, value))
    with pytest.raises(TokenizerFetchFailed, match=f"cannot be unpacked: {reason}"):
        unpack(store, digest, tmp_path / "u")
    assert list((tmp_path / "u").iterdir()) == []


class Catalog:
    def __init__(self, names: set[str]) -> None:
        self._names = names

    def find(self, name_or_id: str) -> TextTokenizer | None:
        return object() if name_or_id in self._names else None  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._names)


def test_where_a_tokenizer_comes_from(tmp_path: Path) -> None:
    catalog = Catalog({"llama-tok", "m"})
    by_name = choose_tokenizer({"tokenizer_path": "llama-tok"}, "m", catalog)
    assert by_name == TokenizerChoice("registry", "llama-tok")
    path = choose_tokenizer({"tokenizer_path": str(tmp_path)}, "m", catalog)
    assert path == TokenizerChoice("tokenizer_path", str(tmp_path))
    assert choose_tokenizer({}, "m", catalog) == TokenizerChoice("registry", "m")
    own = choose_tokenizer({}, "other", catalog)
    assert own.source == "worker" and "registered as 'other'" in own.missing("x")
    with pytest.raises(TokenizerUnavailable, match="names no registered tokenizer"):
        choose_tokenizer({"tokenizer_path": str(tmp_path / "none")}, "m", catalog)
    fetched = TokenizerChoice("worker", "", "ab" * 32)
    assert TokenizerChoice.from_recorded(fetched.recorded()) == fetched
    assert TokenizerChoice.from_recorded({"source": "elsewhere"}) is None


def test_load_adds_the_engines_other_requests() -> None:
    record = {"id": "w", "url": "grpc://h:1", "connection_mode": "grpc", "status": "ready"}
    worker = Worker(record, BreakerSettings(), CredentialBox("k" * 40))
    worker.engine_load = 5
    worker.load += 1  # a request of this node starts
    assert (worker.in_flight, worker.load) == (1, 6)
    worker.engine_load = 2  # a poll while it runs
    worker.load -= 1
    assert (worker.in_flight, worker.load) == (0, 2)
    assert worker.view()["engine_load"] == 2


class ZipStub:
    """A GetTokenizer that streams `data` as the simulator does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def GetTokenizer(self, request: object, **_: object) -> AsyncIterator[object]:
        async def stream() -> AsyncIterator[object]:
            for piece, digest in chunks(self.data):
                yield SimpleNamespace(data=piece, sha256=digest)

        return stream()


def test_a_worker_sending_other_bytes_than_recorded_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "data", 1 << 20)
    data = _zip({"tokenizer.json": b"{}"})
    recorded = hashlib.sha256(b"what discovery recorded").hexdigest()
    with pytest.raises(TokenizerFetchFailed, match=f"not the {recorded} recorded"):
        asyncio.run(fetch(ZipStub(data), None, store, 5.0, expected=recorded))
    assert store.digests() == set()  # nothing kept of the other bytes
    same = hashlib.sha256(data).hexdigest()
    assert asyncio.run(fetch(ZipStub(data), None, store, 5.0, expected=same)) == same


def test_a_tokenizer_that_failed_to_load_is_loaded_again_while_the_worker_is_ready(
    tmp_path: Path,
) -> None:
    """The serving path skips a gRPC worker without its tokenizer: a failed load is tried
    again with backoff, not left until the worker's record next changes."""
    box = CredentialBox("k" * 40)
    pool = WorkerPool(BreakerSettings(), box)
    store = BlobStore(tmp_path / "data", 1 << 20)
    parts = GrpcWorkers(pool, store, NoCatalog(), tmp_path / "unpacked", GrpcSettings())
    parts.retry_first = 0.01
    tries: list[str] = []
    loaded = SimpleNamespace()

    async def prepare(worker: Worker) -> None:  # the worker answers on the third try
        tries.append(worker.id)
        client = parts.connect(worker.id, box.target(worker.record))
        client.tokenizer = loaded if len(tries) == 3 else None  # type: ignore[assignment]

    parts._prepare = prepare  # type: ignore[method-assign]
    record = {"id": "w1", "url": "grpc://127.0.0.1:9", "connection_mode": "grpc"}

    async def run() -> None:
        pool.sync({"w1": {**record, "status": "ready"}})
        for _ in range(500):
            client = parts.client("w1")
            if client is not None and client.tokenizer is loaded:
                break
            await asyncio.sleep(0.01)
        await parts.close()

    asyncio.run(run())
    assert tries == ["w1"] * 3
