"""Fetching blobs from peers, and a registry turning a record into a loaded tokenizer.

A fake peer (an aiohttp server on loopback, in this process) serves the right bytes
for one digest and wrong bytes for another, as a faulty or hostile node might.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from node.blobs.fetch import BlobFetcher, Peer
from node.blobs.store import BlobStore
from node.localmesh import free_port
from node.proxy.upstream import Upstream, make_session
from node.tokenizers.registry import Backoff, TokenizerRegistry
from node.tokenizers.sources import read_source
from tests.tokenizer_files import build_tokenizer_dir

WRONG = b'{"not": "what the digest names"}'


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@asynccontextmanager
async def fake_peer(blobs: dict[str, bytes], files: dict[str, bytes]) -> AsyncIterator[str]:
    """Serves `blobs` at /ha/blobs/{digest} (whatever bytes it is given) and `files` by name."""

    async def blob(request: web.Request) -> web.Response:
        data = blobs.get(request.match_info["digest"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def file(request: web.Request) -> web.Response:
        data = files.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/ha/blobs/{digest}", blob)
    app.router.add_get("/files/{name}", file)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(test: Callable[[Upstream], Awaitable[None]]) -> None:
    async def main() -> None:
        session = make_session()
        try:
            await test(session)
        finally:
            await session.close()

    asyncio.run(main())


def _fetcher(store: BlobStore, session: Upstream, peers: list[Peer]) -> BlobFetcher:
    return BlobFetcher(store, lambda: session, lambda: peers, {}, lambda: 5.0)


def _registry(store: BlobStore, fetcher: BlobFetcher, records: dict[str, Any]) -> TokenizerRegistry:
    backoff = Backoff(first=0.05, most=0.1)

    def in_use() -> set[str]:
        return {f["sha256"] for r in records.values() for f in r["files"].values()}

    work = store.root.parent / "work"
    return TokenizerRegistry(lambda: records, in_use, store, fetcher, work, backoff=backoff)


def test_wrong_bytes_are_refused_and_the_next_peer_asked(tmp_path: Path) -> None:
    good = b'{"model": {}}'
    digest = _sha(good)

    async def test(session: Upstream) -> None:
        store = BlobStore(tmp_path, 1000)
        async with fake_peer({digest: WRONG}, {}) as bad, fake_peer({digest: good}, {}) as ok:
            peers = [Peer("bad", bad), Peer("ok", ok)]
            await _fetcher(store, session, peers).fetch(digest, len(good))
        assert store.verified(digest) is not None

    run(test)


def test_a_mismatch_everywhere_leaves_the_tokenizer_failed_saying_why(tmp_path: Path) -> None:
    digest = _sha(b"the real tokenizer")
    record = {
        "id": "tk1",
        "name": "llama",
        "files": {"tokenizer.json": {"sha256": digest, "size": 100}},
    }

    async def test(session: Upstream) -> None:
        store = BlobStore(tmp_path, 1000)
        async with fake_peer({digest: WRONG}, {}) as bad:
            fetcher = _fetcher(store, session, [Peer("n2", bad)])
            registry = _registry(store, fetcher, {"tk1": record})
            registry.start()
            try:
                status = await _until(lambda: registry.status("tk1")["state"] == "failed", registry)
            finally:
                await registry.stop()
        assert "digest mismatch" in status["reason"] and "n2" in status["reason"]
        assert status["retrying"] is True
        assert not store.has(digest) and registry.find("llama") is None

    run(test)


def test_over_the_recorded_size_is_refused_while_reading(tmp_path: Path) -> None:
    big = b"x" * 5000
    digest = _sha(big)

    async def test(session: Upstream) -> None:
        store = BlobStore(tmp_path, 10_000)
        async with fake_peer({digest: big}, {}) as peer:
            fetcher = _fetcher(store, session, [Peer("n2", peer)])
            try:
                await fetcher.fetch(digest, size=100)
            except Exception as exc:
                assert "larger than the limit of 100 bytes" in str(exc)
            else:
                raise AssertionError("a blob over its recorded size was taken")
        assert store.digests() == set()

    run(test)


def test_a_url_source_is_read_into_the_store_and_loaded(tmp_path: Path) -> None:
    source = build_tokenizer_dir(tmp_path / "src", style="qwen25")
    files = {p.name: p.read_bytes() for p in source.iterdir()}

    async def test(session: Upstream) -> None:
        store = BlobStore(tmp_path / "data", 10_000_000)
        async with fake_peer({}, files) as server:
            host = server.removeprefix("http://")
            read = await read_source(
                f"http://user:pw-SECRET@{host}/files/tokenizer.json", store, session, 5.0
            )
            missing = await read_source(f"{server}/files/absent.json", store, session, 5.0)
        assert read.failure is None and "SECRET" not in read.source
        assert set(read.files) == {"tokenizer.json", "tokenizer_config.json"}
        assert missing.failure and "answered HTTP 404" in missing.failure
        # another node's registry gets the files from this one's store, and loads them
        blobs = {f["sha256"]: store.path(f["sha256"]).read_bytes() for f in read.files.values()}
        record = {"id": "tk1", "name": "qwen", "files": read.files, "chat_template": None}
        other = BlobStore(tmp_path / "other", 10_000_000)
        async with fake_peer(blobs, {}) as peer:
            registry = _registry(
                other, _fetcher(other, session, [Peer("n1", peer)]), {"tk1": record}
            )
            registry.start()
            try:
                await _until(lambda: registry.status("tk1")["state"] == "ready", registry)
            finally:
                await registry.stop()
        tokenizer = registry.find("qwen")
        assert tokenizer is not None and registry.find("tk1") is tokenizer
        assert registry.names() == ["qwen"]
        assert tokenizer.decode(tokenizer.encode("Hello, 世界 🙂")) == "Hello, 世界 🙂"

    run(test)


async def _until(condition: Callable[[], bool], registry: TokenizerRegistry) -> dict[str, Any]:
    for _ in range(200):
        if condition():
            return next(iter(registry.report().values()))
        await asyncio.sleep(0.02)
    raise AssertionError(f"never reached: {registry.report()}")


def test_an_unexpected_error_ends_failed_not_pending(tmp_path: Path) -> None:
    source = build_tokenizer_dir(tmp_path / "src")
    store = BlobStore(tmp_path / "data", 10_000_000)
    files = {}
    for name in ("tokenizer.json", "tokenizer_config.json"):
        digest, size = store.put_file(source / name)
        files[name] = {"sha256": digest, "size": size}

    def broken(path: Path, template: str | None) -> Any:
        raise RuntimeError("the loader has a bug")

    async def test(session: Upstream) -> None:
        record = {"id": "tk1", "name": "llama", "files": files, "chat_template": None}
        registry = _registry(store, _fetcher(store, session, []), {"tk1": record})
        registry.load = broken
        registry.start()
        try:
            status = await _until(lambda: registry.status("tk1")["state"] == "failed", registry)
        finally:
            await registry.stop()
        assert status["reason"] == "RuntimeError: the loader has a bug"

    run(test)
