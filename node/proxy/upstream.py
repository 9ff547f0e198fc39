"""The one HTTP client session a node uses to reach workers.

Created once per node (never per request): a pooled connector with keep-alive,
no connection cap (admission control is the cap), no automatic decompression
(bytes pass through untouched), and only a connect timeout by default since
generations may stream for many minutes; the overall request timeout is set
per call.
"""

from __future__ import annotations

import aiohttp


def make_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=60,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )
