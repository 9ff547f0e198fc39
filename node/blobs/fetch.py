"""Fetch a blob this node lacks from the peers that may have it.

Each peer is asked in turn at `GET /ha/blobs/{sha256}` with the mesh token
(node/ha/peers.py): the size limit is enforced while the body arrives, and the
digest is checked before the file becomes visible (node/blobs/store.py). A peer
that answers wrong bytes is refused and skipped; every peer's reason is kept, so
the status of what needed the blob can say why it is still missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from node.blobs.store import BlobError, BlobStore
from node.proxy.failures import did_not_answer
from node.proxy.upstream import Upstream

READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Peer:
    name: str
    http_url: str


class FetchFailed(Exception):
    """No peer gave the blob; `reasons` says why not, peer by peer."""

    def __init__(self, digest: str, reasons: dict[str, str]) -> None:
        self.digest = digest
        self.reasons = reasons
        said = "; ".join(f"{name}: {why}" for name, why in reasons.items())
        super().__init__(f"blob {digest[:12]} could not be fetched ({said})")


class DownloadError(Exception):
    """One download failed; the message says why (never the URL: it may hold credentials)."""


async def download(
    session: Upstream,
    url: str,
    store: BlobStore,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    expected: str | None = None,
    size: int | None = None,
) -> tuple[str, int]:
    """Stream `url` into the store: its digest and size. The whole download has a
    deadline, the size is capped as it arrives, and `expected` must match."""
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                raise DownloadError(f"answered HTTP {resp.status}")
            with store.writer(expected, size) as writer:
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    writer.write(chunk)
                return await asyncio.to_thread(writer.commit), writer.size  # fsync: off the loop
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError(did_not_answer(exc)) from None
    except ValueError as exc:  # the URL itself (a host idna refuses): never a 500
        if isinstance(exc, BlobError):
            raise DownloadError(f"refused: {exc}") from None
        raise DownloadError("has an invalid URL") from None


class BlobFetcher:
    def __init__(
        self,
        store: BlobStore,
        session: Callable[[], Upstream],  # the node's, opened at start
        peers: Callable[[], list[Peer]],
        headers: Mapping[str, str],
        timeout: Callable[[], float],
    ) -> None:
        self.store = store
        self.session = session
        self.peers = peers  # every other member, the likeliest to answer first
        self.headers = dict(headers)
        self.timeout = timeout

    async def fetch(self, digest: str, size: int | None = None) -> None:
        """Make the blob present and verified here, or raise FetchFailed."""
        reasons: dict[str, str] = {}
        for peer in self.peers():
            url = f"{peer.http_url}/ha/blobs/{digest}"
            try:
                await download(
                    self.session(),
                    url,
                    self.store,
                    headers=self.headers,
                    timeout=self.timeout(),
                    expected=digest,
                    size=size,
                )
                return
            except DownloadError as exc:
                reasons[peer.name] = str(exc)
        raise FetchFailed(digest, reasons or {"mesh": "no other member to ask"})
