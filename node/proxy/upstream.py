"""The one HTTP client a node uses to reach workers and peers, and what it never does.

Created once per node (never per request): a pooled connector with keep-alive,
no connection cap (admission control is the cap), no automatic decompression
(bytes pass through untouched, so it asks for `identity`: a compressed answer
relayed without its Content-Encoding would be garbage to the client), no cookie
jar (a worker's cookies are never replayed to other workers), and only a connect
timeout by default since generations may stream for many minutes; the overall
request timeout is set per call. Its fixed headers are session defaults, and a
URL is parsed once per distinct address: on the hot path aiohttp then neither
re-sorts skipped headers nor re-parses the worker's URL for every request.

It never follows a redirect. aiohttp follows them by default, so a worker
(or anything answering at a worker's address) could send the node, with the
worker's credentials and the client's prompt, to any address it names: the
cloud metadata service, an admin port on loopback, another tenant's worker.
`Upstream` is the only way the node's parts call out, and it sets
`allow_redirects=False` on every call; a 3xx answer is a failure of the
worker (see `is_redirect`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import aiohttp
from yarl import URL

# Sent on every call: a fixed name (never aiohttp's version) and no compression.
DEFAULT_HEADERS = {"User-Agent": "meshgate", "Accept-Encoding": "identity"}


def is_redirect(status: int) -> bool:
    """A 3xx answer: never followed, and never taken for success."""
    return 300 <= status < 400


class Upstream:
    """aiohttp's session with redirects switched off for every call."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def request(self, method: str, url: str | URL, **kwargs: Any) -> Any:
        """Like `ClientSession.request` (await it, or use it as a context manager)."""
        if isinstance(url, str):
            url = parsed(url)
        return self.session.request(method, url, allow_redirects=False, **kwargs)

    def get(self, url: str | URL, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str | URL, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    async def close(self) -> None:
        await self.session.close()


@lru_cache(maxsize=4096)
def parsed(url: str) -> URL:
    """A URL parsed once: workers' and peers' addresses and routes are few and repeat
    (bounded all the same, since any URL a record names could come through here)."""
    return URL(url)


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
            headers=DEFAULT_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    )
