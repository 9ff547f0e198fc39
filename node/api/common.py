"""Small helpers shared by the HTTP handlers: JSON in and out, the caller's address."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from node.app import NODE, Node
from node.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


_BODY_READ = web.RequestKey("meshgate.body", bytes)  # the body bounded_body read


def node_of(request: web.Request) -> Node:
    return request.app[NODE]


def body_was_read(request: web.Request) -> bool:
    return _BODY_READ in request


async def bounded_body(request: web.Request) -> bytes:
    """The request body, at most the control-plane limit, or a 413; read once, so that a
    guard (WASM OnRequest) and the handler can both see it."""
    cached: bytes | None = request.get(_BODY_READ)
    if cached is not None:
        return cached
    limit = min(MAX_CONTROL_BODY, request.client_max_size)
    if limit < MAX_CONTROL_BODY:
        too_large = ApiError(
            413,
            f"request body is larger than the limit of {limit} bytes; "
            "send less or raise --max-payload-size",
        )
    else:
        too_large = ApiError(
            413,
            f"a control-plane request body may be at most {limit} bytes",
            extra={"limit": limit},
        )
    if (request.content_length or 0) > limit:
        raise too_large
    # Read at most one byte past the limit: a chunked body has no length to check first,
    # and request.read() would buffer up to --max-payload-size before we could refuse it.
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise too_large
    read = request[_BODY_READ] = bytes(body)
    return read


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 (413) saying what is wrong with it."""
    body = await bounded_body(request)
    if not body:
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise ApiError(400, f"request body is nested deeper than {MAX_DEPTH} levels")
    return data


MAX_DEPTH = 32  # control state is pickled into the Raft log: keep it shallow
MAX_CONTROL_BODY = 1024 * 1024  # control bodies become replicated records: keep them small


_FLAG_VALUES = {"true": True, "1": True, "false": False, "0": False}


def query_flag(request: web.Request, name: str) -> bool:
    """A `?name=true|false` query flag (false when absent); a 400 saying what to send for
    anything else, or for the flag given twice."""
    values = request.query.getall(name, [])
    if not values:
        return False
    if len(values) > 1 or values[0].lower() not in _FLAG_VALUES:
        shown = ", ".join(values)[:40]
        raise ApiError(400, f"?{name}= must be true or false (once), not {shown!r}", param=name)
    return _FLAG_VALUES[values[0].lower()]


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (bodies may be hostile)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def client_address(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """The caller's address: the peer's, or, when the peer is a trusted proxy (a load
    balancer), the nearest X-Forwarded-For hop that is not itself a trusted proxy."""
    peer = request.remote or "unknown"
    if not trusted_proxies or not _trusted(peer, tuple(trusted_proxies)):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, tuple(trusted_proxies)):
            return hop[:64]
    return peer


@functools.lru_cache(maxsize=1024)
def _trusted(address: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)
