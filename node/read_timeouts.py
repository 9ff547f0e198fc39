"""Read timeouts for slow clients: headers and bodies must arrive in bounded time.

aiohttp waits as long as a client likes for the rest of a request's headers,
and a handler reading a body waits as long as the client likes for its bytes.
A slowloris client (a byte of headers every few seconds, or a body trickled
in) holds a connection, and a task, for ever; enough of them exhaust the
node's file descriptors. aiohttp has no setting for either, so the node serves
with `GuardedRequestHandler`, its protocol class with two timers:

- headers: armed when a connection opens and when the first byte of a new
  request arrives on a kept-alive one; disarmed once the request's headers are
  parsed (aiohttp then calls `_handle_request`). When it fires, the connection
  is closed, with a 408 if part of a request had arrived.
- idle: armed when a request ends on a connection that stays open. A kept-alive
  connection may idle this long (aiohttp's own default is an hour), and this
  also bounds a request pipelined behind the last one whose headers never
  finish: its bytes came in before the last request was handled, so they
  started no header timer of their own.
- body: armed when a request whose body is not all there yet reaches its
  handler; disarmed when the handler is done. When it fires with the body
  still incomplete, the next read of the body raises a 408 `ApiError` (which
  the error middleware answers), and the connection is closed afterwards.

Neither touches a response: a stream to the client may last as long as the
generation does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from node.deadline import Deadline
from node.errors import ApiError, error_body


@dataclass(frozen=True)
class ReadTimeouts:
    headers: float = 10.0
    body: float = 60.0
    idle: float = 75.0


def _timed_out_response(message: str) -> bytes:
    body = orjson.dumps(error_body(408, message, code="REQUEST_TIMEOUT"))
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol for one connection, with a header and a body deadline."""

    __slots__ = (
        "_body_deadline",
        "_body_late",
        "_headers_due",
        "_idle",
        "_in_request",
        "_partial",
        "_timeouts",
    )

    def __init__(self, manager: web.Server, *, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._timeouts = timeouts
        # The header and idle deadlines, on one timer (node/deadline.py).
        self._headers_due = Deadline(self._loop, self._headers_overdue)
        self._idle = False  # the armed timer is the idle one, not the header one
        self._in_request = False
        self._partial = False  # bytes of a request whose headers are not complete yet
        self._body_late = False
        self._body_deadline: float | None = None  # the first request's, kept from the front

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_headers()

    def data_received(self, data: bytes) -> None:
        if data and not self._in_request:
            self._partial = True
            if self._headers_due.at is None or self._idle:
                self._disarm_headers()
                self._arm_headers()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._headers_due.cancel()
        super().connection_lost(exc)

    async def _handle_request(self, request: Any, start_time: Any, request_handler: Any) -> Any:
        # The request's headers are parsed: the header deadline is met.
        self._disarm_headers()
        self._in_request, self._partial = True, False
        body_timer = None
        due, self._body_deadline = self._body_deadline, None
        if not request.content.is_eof():
            delay = self._timeouts.body if due is None else due - self._loop.time()
            body_timer = self._loop.call_later(delay, self._body_overdue, request)
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if body_timer is not None:
                body_timer.cancel()
            self._in_request = False
            if self._body_late:
                self.force_close()  # the rest of that body may still be on its way
            elif self.transport is not None and not self.transport.is_closing():
                self._arm_headers(self._timeouts.idle)

    def keep_header_deadline(self, deadline: float) -> None:
        """Handed a connection whose request began before this protocol had it (by the
        front, node/front/), with its bytes so far: a head still incomplete in them is due
        when it was, not `headers` from now. (A head they hold, or a refusal, is answered.)"""
        if not self._messages:
            self._arm_headers(at=deadline)

    def keep_body_deadline(self, deadline: float) -> None:
        """Handed a connection by the front with a request whose body is on its way: the
        body is due when it was, not `body` from when this protocol reads the head."""
        self._body_deadline = deadline

    def _arm_headers(self, after: float | None = None, *, at: float | None = None) -> None:
        self._idle = after is not None
        if at is None:
            at = self._loop.time() + (self._timeouts.headers if after is None else after)
        self._headers_due.set(at)

    def _disarm_headers(self) -> None:
        self._headers_due.clear()

    def _headers_overdue(self) -> None:
        if self._in_request or self.transport is None:
            return
        if self._partial:  # a request was started, so say why it ends
            seconds = self._timeouts.idle if self._idle else self._timeouts.headers
            self.transport.write(
                _timed_out_response(f"request headers not received within {seconds:g} s")
            )
        self.force_close()

    def _body_overdue(self, request: web.BaseRequest) -> None:
        if request.content.is_eof():
            return
        self._body_late = True
        seconds = self._timeouts.body
        request.content.set_exception(
            ApiError(
                408,
                f"the request body did not arrive within {seconds:g} s; send it faster",
                code="REQUEST_TIMEOUT",
            )
        )


class GuardedServer(web.Server):
    """aiohttp's server (the protocol factory), making `GuardedRequestHandler`s."""

    def __init__(self, *args: Any, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, timeouts=self.timeouts, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` whose server guards every connection with `ReadTimeouts`."""

    def __init__(self, app: web.Application, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._timeouts = timeouts

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app, as AppRunner does
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            timeouts=self._timeouts,
            **plain._kwargs,
        )
