"""A client that goes away is not a server failure: status 499 ("client closed request").

A client may hang up at any point: while its request waits for a slot, while
the worker thinks, or halfway through a stream. aiohttp then cancels the
handler (`asyncio.CancelledError`), or a write to the closed transport raises
`ConnectionResetError`, which the stream relay catches; either way the
request's transport is closed by then, and that is what is checked here.
Counted as 500 these would set off error alerts for what is the client's own
choice, so the request metrics and the audit log record 499, as nginx does,
and the log says so at info level.
"""

from __future__ import annotations

from aiohttp import web

CLIENT_CLOSED_REQUEST = 499


def client_gone(request: web.Request) -> bool:
    """Whether the client hung up: its connection is closed or closing.

    That covers a failed write too: aiohttp raises `ConnectionResetError` on a write
    only once the transport is gone or closing, and a socket error closes it."""
    transport = request.transport
    return transport is None or transport.is_closing()


def final_status(request: web.Request, status: int) -> int:
    """The status to record for a request that ended with `status`: 499 once the client
    is gone (the status line it may have received no longer describes what happened)."""
    return CLIENT_CLOSED_REQUEST if client_gone(request) else status
