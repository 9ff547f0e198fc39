"""A node with no credentials at all answers no web page but a loopback one.

Loopback development mode and the demo serve with no credentials: anyone who
reaches the port acts as an admin. The port is on loopback only, but a browser
on the same machine reaches it too, on behalf of any page it shows. A page can
POST to `http://127.0.0.1:30000/workers` (drive-by CSRF: sending needs no CORS
approval), and a page on a domain its author re-points at 127.0.0.1 (DNS
rebinding) can even read the answers, since the browser believes it talks to
the page's own origin.

Browsers say where a request comes from: `Origin` on cross-origin requests and
on every POST, and `Host` carries the name the page used. So while no
credential is configured, a request whose `Host` is not a loopback name
(`localhost`, `127.0.0.0/8`, `[::1]`, any port) is refused (DNS rebinding), and
so is one whose `Origin` is not a loopback origin (a cross-site page) nor one the
operator listed in `--cors-origins` (a console served elsewhere: listing it is
trusting its pages with this node, as an admin). Tools that send neither (curl,
SDKs, probes) are unaffected, and so is every node that has a credential, since
then each request must carry one.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from node.app import NODE
from node.config import is_loopback
from node.cors import CORS
from node.digits import ascii_int
from node.errors import ApiError


@functools.lru_cache(maxsize=256)  # asked per request; a client sends few distinct values
def _loopback_host(host: str) -> bool:
    return is_loopback(_host_name(host))


def _host_name(host: str) -> str:
    """`[::1]:8080` -> `::1`, `Localhost:80` -> `localhost`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return (name if colon and ascii_int(port, max_digits=5) is not None else host).lower()


def _loopback_origin(origin: str) -> bool:
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host is not None and is_loopback(host)


@web.middleware
async def browser_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.app[NODE].auth.configured:
        host = request.headers.get("Host")
        if host is not None and not _loopback_host(host):
            raise ApiError(
                403,
                f"this node has no credentials, so it answers only requests addressed to a "
                f"loopback name (localhost, 127.0.0.1, [::1]), not {host[:100]!r}; configure "
                "--api-key or --control-plane-api-keys to serve other names",
                code="HOST_NOT_ALLOWED",
            )
        origin = request.headers.get("Origin")
        if (
            origin is not None
            and not _loopback_origin(origin)
            and not request.app[CORS].listed(origin)
        ):
            raise ApiError(
                403,
                f"this node has no credentials, so it refuses requests from web pages of "
                f"other sites (Origin {origin[:100]!r}); call it from a tool, or configure "
                "credentials",
                code="CROSS_SITE_REQUEST",
            )
    return await handler(request)  # type: ignore[no-any-return]
