"""The one HTTP client a node uses to reach workers and peers, and what it never does.

Created once per node (never per request): a pooled connector with keep-alive,
no connection cap (admission control is the cap), no automatic decompression
(bytes pass through untouched), and only a connect timeout by default since
generations may stream for many minutes; the overall request timeout is set
per call.

It never follows a redirect. aiohttp follows them by default, so a worker
(or anything answering at a worker's address) could send the node, with the
worker's credentials and the client's prompt, to any address it names: the
cloud metadata service, an admin port on loopback, another tenant's worker.
`Upstream` is the only way the node's parts call out, and it sets
`allow_redirects=False` on every call; a 3xx answer is a failure of the
worker (see `is_redirect`).
"""

from __future__ import annotations

from typing import Any

import aiohttp


def is_redirect(status: int) -> bool:
    """A 3xx answer: never followed, and never taken for success."""
    return 300 <= status < 400


class Upstream:
    """aiohttp's session with redirects switched off for every call."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """Like `ClientSession.request` (await it, or use it as a context manager)."""
        return self.session.request(method, url, allow_redirects=False, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    async def close(self) -> None:
        await self.session.close()


def make_session() -> Upstream:
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=60,
    )
    return Upstream(
        aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
    )
