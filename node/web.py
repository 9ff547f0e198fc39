"""The HTTP face of a node: the aiohttp application, its middlewares and routes.

Kept apart from `node.app` so that the node and its parts never import the
HTTP layer: handlers reach the node through `request.app[NODE]`, and this
module is the one place that puts the two together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from node.api import routes
from node.app import NODE, Node
from node.applied_wait import AppliedWaiter
from node.audit import AUDIT, AuditLog, audit_middleware
from node.browser_guard import browser_guard
from node.config import Config
from node.console.headers import add_console_headers
from node.cors import CORS, CorsPolicy, add_cors_headers, preflight
from node.errors import error_middleware
from node.http_limits import MAX_FIELD_SIZE
from node.index_headers import add_index, min_index
from node.load_gate import load_gate

Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]
ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]

# Outermost first: audit sees every answer, errors become JSON before it does; a request
# waits for its X-Meshgate-Min-Index once the replica is loaded, before its handler. A CORS
# preflight is answered before the browser guard (which it tells about listed origins).
MIDDLEWARES = (
    audit_middleware,
    error_middleware,
    preflight,
    browser_guard,
    load_gate,
    min_index,
)


def answer_headers(
    applied: AppliedWaiter, cors: CorsPolicy, fixed: Mapping[str, str]
) -> ResponseHook:
    """The on_response_prepare hook: `fixed` headers and X-Meshgate-Index on every answer,
    the console's headers (the router's 405s under /ui too), CORS. One hook with its parts
    bound, since it runs before every answer (each hook is a coroutine of its own, each app
    lookup a call)."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        if fixed:
            response.headers.update(fixed)
        add_index(applied, response)
        add_console_headers(request, response)
        add_cors_headers(cors, request, response)

    return add


def create_app(
    config: Config, config_file: str | None = None, outer: Sequence[Middleware] = ()
) -> web.Application:
    """A node's application (a whole node, or a control process): the node starts with
    the app and stops with its cleanup. `outer` middlewares run before all the others."""
    app = build_app(config, Node(config, config_file), (*outer, *MIDDLEWARES))
    routes.install(app, app[NODE])
    return app


def build_app(
    config: Config,
    node: Node,
    middlewares: Sequence[Middleware],
    fixed_headers: Mapping[str, str] | None = None,
    process: str | None = None,
) -> web.Application:
    """The application around `node`, without routes (the caller installs them);
    `fixed_headers` go on every answer; a data-plane `process` audits to files of its own."""
    app = web.Application(
        middlewares=middlewares,
        client_max_size=config.max_payload_size,
        handler_args={"max_field_size": MAX_FIELD_SIZE},
    )
    app[NODE] = node
    cors = app[CORS] = CorsPolicy.of(config.cors_origins, config.request_id_headers)
    app.on_response_prepare.append(answer_headers(node.applied, cors, fixed_headers or {}))
    audit = app[AUDIT] = AuditLog(config.data_path / "audit.jsonl", config.node_name, process)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        with contextlib.closing(audit):  # closed last, and also when the node fails to start
            await node.start()
            yield
            await node.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
