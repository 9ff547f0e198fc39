"""The front: the protocol of every connection to a node's HTTP port.

aiohttp's server costs a proxied request more than the rest of the node does: its
protocol's parser, payload stream and per-connection loop, the router and the middleware
chain made per request (bench/README.md, "Where the rounds leave a node"). The front
reads each connection first. A request it can take whole (`node/front/head.py`: a plain
POST to an inference path, with its body all there within `GATHER_SECS`) it serves itself:
it builds aiohttp's own `web.Request` around the body it read, runs the route's handler
inside the app's middlewares (`node/front/routes.py`), and writes aiohttp's own response
with aiohttp's own writer. So handlers, middlewares, hooks and answers are the ones every
other request gets; only the reading and the dispatch are the front's.

Anything else (another route, a chunked body, `Expect`, an upgrade, a slow or large
request, a head it does not read) hands the connection over to aiohttp's protocol
(node/read_timeouts.py), with every byte it has received, before it answers anything on
it. aiohttp then reads the request from its first byte as if it had had the connection
from the start, and keeps it.

The front keeps aiohttp's rules for what it serves:
- the handler runs in a task the front cancels when the client goes (`handler_cancellation`);
- a connection idle for `ReadTimeouts.idle` between requests is closed, and one that sends
  nothing at all for `ReadTimeouts.headers`;
- the server's shutdown closes idle connections and waits for a request in progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import HttpVersion11, RawRequestMessage, StreamWriter
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.tcp_helpers import tcp_keepalive
from multidict import CIMultiDict, CIMultiDictProxy, istr

from node.deadline import Deadline
from node.front.answer import takes, write_whole
from node.front.head import HANDOVER, Head, read_head
from node.front.routes import FastRoute
from node.read_timeouts import GuardedRequestHandler, ReadTimeouts

log = logging.getLogger(__name__)

# A request not all there this long after its first byte is aiohttp's to read (with its
# own header and body deadlines): a slow client costs the front one timer, never a wait.
GATHER_SECS: Final = 1.0
# Bytes the front holds for one request (head and body), and unread behind a running one.
MAX_GATHER_BYTES: Final = 1 << 20
JOIN_BELOW: Final = 65536


class Front:
    """What the connections of one listener share; called, it makes a connection's protocol."""

    __slots__ = ("loop", "max_body", "routes", "server", "timeouts")

    def __init__(
        self,
        server: web.Server,
        routes: Mapping[bytes, FastRoute],
        timeouts: ReadTimeouts,
        max_body: int,
    ) -> None:
        self.server = server  # aiohttp's: makes the protocol a connection is handed to
        self.routes = routes
        self.timeouts = timeouts
        self.max_body = min(max_body, MAX_GATHER_BYTES)
        self.loop = asyncio.get_running_loop()

    def __call__(self) -> FrontProtocol:
        return FrontProtocol(self)


# aiohttp's parser gives the names it knows in their usual spelling (content-type as
# Content-Type), and so does the front: a handler, a WASM module or a worker sees the same.
_KNOWN_NAMES: Final = {
    name.lower().encode(): str(name) for name in vars(hdrs).values() if isinstance(name, istr)
}


def _decoded(headers: tuple[tuple[bytes, bytes], ...]) -> CIMultiDictProxy[str]:
    decoded: CIMultiDict[str] = CIMultiDict()
    add = decoded.add
    known = _KNOWN_NAMES.get
    for name, value in headers:  # as aiohttp's parser decodes them
        add(
            known(name.lower()) or name.decode("utf-8", "surrogateescape"),
            value.decode("utf-8", "surrogateescape"),
        )
    return CIMultiDictProxy(decoded)


class FrontProtocol(BaseProtocol):
    """One connection, until it is closed or handed over to aiohttp."""

    __slots__ = (
        "_body_deadline",
        "_buffer",
        "_closing",
        "_deadline",
        "_front",
        "_gathering",
        "_head",
        "_header_deadline",
        "_held",
        "_task",
        "_task_handler",
        "peername",
        "sockname",
        "ssl_context",
    )

    def __init__(self, front: Front) -> None:
        super().__init__(front.loop)
        self._front = front
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None  # the request being served
        self._task_handler = None  # web.Server reads it when a connection goes
        self._closing = False  # the server is shutting down: no further request
        self._held = False  # reading paused: enough bytes wait behind the running request
        self._deadline = Deadline(front.loop, self._expired)
        self._gathering = False  # the deadline is a request's, not an idle connection's
        self._head: Head | None = None  # of the request being gathered, once it is read
        # When the head of the request on its way must be all there, as aiohttp reckons it:
        # `headers` from the connection's start, or from a kept-alive request's first byte.
        self._header_deadline: float | None = None
        self._body_deadline: float | None = None  # `body` from its head, as aiohttp reckons it
        self.peername: Any = None
        self.sockname: Any = None
        self.ssl_context: Any = None

    # -- asyncio's calls -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        real = self.transport
        assert real is not None
        tcp_keepalive(real)
        self.peername = real.get_extra_info("peername")
        self.sockname = real.get_extra_info("sockname")
        self.ssl_context = real.get_extra_info("sslcontext")
        self._front.server.connection_made(self, real)  # type: ignore[arg-type]
        self._header_deadline = self._front.loop.time() + self._front.timeouts.headers
        self._arm(self._front.timeouts.headers, gathering=False)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._task is not None:  # behind the running request: read once it is done
            if len(self._buffer) > MAX_GATHER_BYTES and not self._held:
                self._held = True
                self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self._next()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._deadline.cancel()
        self._front.server.connection_lost(self, exc)  # type: ignore[arg-type]
        if self._task is not None:
            self._task.cancel()  # the client left: its handler stops, as with aiohttp
        super().connection_lost(exc)

    # -- what web.Server calls at shutdown -------------------------------------------------

    def close(self) -> None:
        """No further request: close now if idle, else once the current answer is sent."""
        self._closing = True
        if self._task is None and self.transport is not None:
            self.transport.close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        """Wait for the request in progress (at most `timeout`), then close."""
        self._closing = True
        task = self._task
        if task is not None:
            _, pending = await asyncio.wait({task}, timeout=timeout)
            if pending:
                task.cancel()
                await asyncio.wait({task}, timeout=timeout)
        if self.transport is not None:
            self.transport.close()

    # -- reading ---------------------------------------------------------------------------

    def _next(self) -> None:
        """Serve the request the buffer starts with, when it is all there."""
        buffer = self._buffer
        if not buffer:
            self._arm(self._front.timeouts.idle, gathering=False)
            return
        front = self._front
        head = self._head
        if head is None:
            read = read_head(buffer, front.routes, front.max_body)
            if read is HANDOVER:
                self._hand_over()
                return
            head = self._head = read  # type: ignore[assignment]
            if head is not None:
                self._header_deadline = None  # met
                if len(buffer) < head.size + head.content_length:  # a body on its way
                    self._body_deadline = front.loop.time() + front.timeouts.body
        if head is None or len(buffer) < head.size + head.content_length:
            self._resume()  # the rest of this request is needed, however much is held
            if not self._gathering:
                self._arm(self._gathering_time(head), gathering=True)
            return
        end = head.size + head.content_length
        if not head.keep_alive and len(buffer) > end:
            self._hand_over()  # bytes after `Connection: close`: llhttp refuses them all
            return
        body = bytes(buffer[head.size : end])
        del buffer[:end]
        self._head = None
        self._deadline.clear()  # no deadline while a request runs, as with aiohttp
        self._header_deadline = self._body_deadline = None
        self._gathering = False
        route = front.routes[head.path]
        self._task = front.loop.create_task(self._serve(route, head, body))

    def _gathering_time(self, head: Head | None) -> float:
        """How long to wait for the rest of a request: GATHER_SECS, and no longer than its
        head's or body's deadline (aiohttp's protocol then keeps that deadline)."""
        now = self._front.loop.time()
        if head is None and self._header_deadline is None:  # a kept-alive request's first byte
            self._header_deadline = now + self._front.timeouts.headers
        due = self._header_deadline if head is None else self._body_deadline
        return GATHER_SECS if due is None else min(GATHER_SECS, due - now)

    def _hand_over(self) -> None:
        """Give the connection, and every byte received on it, to aiohttp's protocol."""
        transport = self.transport
        assert transport is not None
        self._deadline.cancel()
        self._front.server.connection_lost(self, None)  # type: ignore[arg-type]
        self.transport = None
        handler = self._front.server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._held:  # aiohttp's protocol has its own flow control
            transport.resume_reading()
        data = bytes(self._buffer)
        self._buffer.clear()
        handler.data_received(data)
        if isinstance(handler, GuardedRequestHandler):
            if self._header_deadline is not None:
                handler.keep_header_deadline(self._header_deadline)
            if self._body_deadline is not None:
                handler.keep_body_deadline(self._body_deadline)

    # -- serving ---------------------------------------------------------------------------

    async def _serve(self, route: FastRoute, head: Head, body: bytes) -> None:
        front = self._front
        message = RawRequestMessage(
            "POST",
            route.url.path,
            HttpVersion11,
            _decoded(head.headers),
            head.headers,
            not head.keep_alive,
            None,
            False,
            False,
            route.url,
        )
        writer = StreamWriter(self, front.loop)
        request: web.Request = front.server.request_factory(  # type: ignore[assignment]
            message,
            EMPTY_PAYLOAD,
            self,  # type: ignore[arg-type]
            writer,
            self._task,  # type: ignore[arg-type]
        )
        request._match_info = route.match_info
        request._read_bytes = body  # read() answers it: the whole body is here
        keep = False
        try:
            try:
                response = await route.handle(request)
            except web.HTTPException as exc:  # what aiohttp's protocol answers it with
                response = exc
            except asyncio.CancelledError:
                raise
            except TimeoutError:  # aiohttp answers a handler's timeout with a 504
                response = front.server().handle_error(request, 504)
            except Exception as exc:  # the error middleware answers all else: this is a fault
                # aiohttp's own answer and log line, from a protocol of its never connected:
                # its 500 (HTML to a browser), or, once an answer has begun, a ConnectionError
                # that ends the connection (a second status line would corrupt the first).
                response = front.server().handle_error(request, 500, exc)
            if takes(response):
                answer = await write_whole(request, response, route.app)  # type: ignore[arg-type]
                self._write(*answer)
                if self._paused:  # as aiohttp's writer: the client reads before the next
                    await self._drain_helper()
            else:
                await response.prepare(request)
                await response.write_eof()
            keep = response.keep_alive is not False
        except ConnectionError:
            pass  # the client went while its answer was written
        except Exception:  # an answer that cannot be written; the connection closes
            log.exception("error writing the answer to POST %s", route.url.path)
        finally:
            self._task = None
            self._after(keep)

    def _write(self, head: bytes, body: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went before its answer")
        if len(body) < JOIN_BELOW:  # a copy costs less than a second write
            transport.write(head + body)
        else:
            transport.writelines((head, body))

    def _after(self, keep: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if not keep or self._closing:
            transport.close()
            return
        # Read on only once what is held has been served down to the limit: resuming after
        # every answer would add a read's worth per request, and a client that pipelines
        # faster than its requests are served would grow the buffer without bound.
        if len(self._buffer) <= MAX_GATHER_BYTES:
            self._resume()
        self._next()

    def _resume(self) -> None:
        if self._held and self.transport is not None:
            self._held = False
            self.transport.resume_reading()

    # -- the deadline: idle, or a request's gathering ---------------------------------------

    def _arm(self, delay: float, *, gathering: bool) -> None:
        self._gathering = gathering
        self._deadline.set_after(delay)

    def _expired(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._gathering:
            self._hand_over()  # a slow request: aiohttp reads it, with its own deadlines
        elif not self._buffer:
            transport.close()  # idle too long; nothing was asked, so nothing is said
