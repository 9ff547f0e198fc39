"""CORS for consoles served from another origin (`--cors-origins`), off by default.

With no origin listed a node sends no CORS header at all, so browsers keep every other
site's pages from reading its answers (they may still send simple requests: the guards
and, on a node without credentials, node/browser_guard.py deal with those).

A listed origin is matched exactly, as browsers send it (`scheme://host[:port]`, lower
case, no path): `https://console.example` does not let in `https://console.example.evil.com`,
`HTTPS://CONSOLE.EXAMPLE`, `null` or `https://console.example/`. For a listed origin:
- a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 here,
  before any guard, with the route's methods, the request headers the API reads, and
  `Access-Control-Allow-Credentials: true`;
- every answer carries `Access-Control-Allow-Origin: <that origin>` (never `*`: the
  caller sends credentials), `-Allow-Credentials` and `-Expose-Headers`.
A preflight from any other origin is refused (403 JSON). Every answer of a node with
CORS on says `Vary: Origin`, so no cache serves one origin's answer to another.

`GET /ws` is not covered by CORS (browsers open a WebSocket to any site, with no
preflight), so its handshake checks Origin itself (`websocket_origin_problem`): the
node's own origin or a listed one, else 403 (cross-site WebSocket hijacking).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from node.errors import ApiError
from node.index_names import INDEX_HEADER, MIN_INDEX_HEADER
from node.origins import DEFAULT_PORTS, ORIGIN

MAX_AGE_SECS: Final = 600  # browsers cap it anyway (Chromium: 2 hours)
# What the API reads from a request (besides the request id headers, which are a setting).
ALLOWED_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-API-Key",
    MIN_INDEX_HEADER,
    "X-Session-Id",
    "X-Routing-Key",
)
EXPOSED_HEADERS: Final = (
    INDEX_HEADER,
    "X-Meshgate-Siblings-Behind",
    "X-Meshgate-Worker",
    "X-Meshgate-Prefill-Worker",
    "X-Meshgate-Process",
    "X-Request-Id",
    "Retry-After",
    "Location",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


@dataclass(frozen=True)
class CorsPolicy:
    """--cors-origins as the middlewares read it, with the header lists sent to them."""

    origins: frozenset[str]
    allow_headers: str
    expose_headers: str = ", ".join(EXPOSED_HEADERS)

    @classmethod
    def of(cls, origins: Iterable[str], request_id_headers: Iterable[str]) -> CorsPolicy:
        headers = dict.fromkeys([*ALLOWED_HEADERS, *request_id_headers])  # ordered, once each
        return cls(frozenset(origins), ", ".join(headers))

    @property
    def on(self) -> bool:
        return bool(self.origins)

    def listed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.origins


CORS: Final = web.AppKey("cors", CorsPolicy)


def _preflight_methods(request: web.Request) -> str:
    """The methods of the route at the request's path (aiohttp found none for OPTIONS)."""
    refusal = request.match_info.http_exception
    if isinstance(refusal, web.HTTPMethodNotAllowed):
        return ", ".join(sorted(refusal.allowed_methods))
    raise ApiError(404, f"no route for {request.path}")


@web.middleware
async def preflight(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer CORS preflights (before the browser guard and every route's guard)."""
    if request.method != "OPTIONS":  # nearly every request: asked first
        return await handler(request)  # type: ignore[no-any-return]
    policy = request.app[CORS]
    origin = request.headers.get("Origin")
    is_preflight = origin is not None and "Access-Control-Request-Method" in request.headers
    if not (policy.on and is_preflight):
        return await handler(request)  # type: ignore[no-any-return]
    if not policy.listed(origin):
        raise ApiError(
            403,
            f"origin {origin[:100]!r} is not in this node's --cors-origins; list it there "
            "to let its pages call this node",
            code="CORS_ORIGIN_NOT_ALLOWED",
        )
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": _preflight_methods(request),
            "Access-Control-Allow-Headers": policy.allow_headers,
            "Access-Control-Max-Age": str(MAX_AGE_SECS),
        },
    )


def add_cors_headers(
    policy: CorsPolicy, request: web.Request, response: web.StreamResponse
) -> None:
    """Every answer (errors and streams too) to a listed origin (node/web.py calls it before
    each answer's headers go)."""
    if not policy.on:
        return
    if "Origin" not in response.headers.getall("Vary", ()):  # once (a handed-over answer has it)
        response.headers.add("Vary", "Origin")
    origin = request.headers.get("Origin")
    if policy.listed(origin):
        assert origin is not None
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        if request.method != "OPTIONS":
            response.headers["Access-Control-Expose-Headers"] = policy.expose_headers


def _page_hosts(request: web.Request) -> set[str]:
    """The host the page used: `Host`, or the `X-Forwarded-Host` of a proxy that rewrites
    it. A page cannot set either on a WebSocket handshake, so neither lets one in."""
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0]
    return {h.strip().lower() for h in (request.headers.get("Host", ""), forwarded)} - {""}


def websocket_origin_problem(request: web.Request) -> str | None:
    """Why a WebSocket handshake's Origin is refused: neither this node's own origin (the
    host the page used) nor a listed one. Tools that send no Origin are not browsers."""
    origin = request.headers.get("Origin")
    if origin is None or request.app[CORS].listed(origin):
        return None
    match = ORIGIN.fullmatch(origin)
    if match is not None:
        name, port = match["host"], match["port"] or DEFAULT_PORTS[match["scheme"]]
        same = {f"{name}:{port}"} | ({name} if match["port"] is None else set())
        if same & _page_hosts(request):
            return None
    return (
        f"a WebSocket from the page of origin {origin[:100]!r} is refused: only this node's "
        "own pages and the origins in its --cors-origins may open /ws"
    )
