"""The forwarder's HTTP/1.1 client: one POST to a worker and its answer, on pooled
keep-alive connections, as little Python per request as that takes.

aiohttp's client was a third of a node's CPU per proxied request (bench/README.md,
"Where a node's CPU goes"): a request object, a timer and a task per call, its own
stream reader. A forwarder needs much less: write a request whose body is bytes it
already holds, then read an answer it relays as bytes. So this is an asyncio
`Protocol` with httptools (llhttp, the parser uvicorn uses) doing all the parsing;
what is left here is the pool, the framing of the request, the deadline and the
flow control. Health checks, discovery and peers keep aiohttp (`node/proxy/upstream.py`).

What it never does: follow a redirect (a 3xx is the caller's to refuse), decompress
(it asks for `identity` and relays bytes), keep cookies, or send a header value with a
line break. A connection goes back to the pool only after a complete answer that allows
it; an answer closed before its end closes its connection, which is how a client that
leaves cancels its generation. A request is sent twice only when a pooled connection
closes within STALE_SECS of it, before a byte of an answer: the worker closed it while
idle. Header lines and whole answers have size limits (MAX_HEAD_BYTES, MAX_WHOLE_BYTES).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import httptools
from yarl import URL

from node.deadline import Deadline

HIGH_WATER = 2**20  # unread bytes of an answer before its socket stops being read
MAX_HEAD_BYTES = 64 * 1024  # an answer's header names and values together, at most
# A whole answer read at once (a stream is relayed as it comes, never held): a worker
# that sends more is a failure, not a node out of memory. Embeddings of a large batch
# are the largest answers a worker gives.
MAX_WHOLE_BYTES = 256 * 2**20
IDLE_SECS = 60.0  # a pooled connection idle longer is closed, not reused
# A pooled connection that closes this soon after a request was sent on it, before any
# answer, was closed by the worker while idle (the request crossed its close): the
# request is sent again on a new connection. Later, the worker may have been working
# on it (a generation that died): sending it again is the forwarder's call, not ours.
STALE_SECS = 0.5
FIXED_HEADERS = b"User-Agent: meshgate\r\nAccept-Encoding: identity\r\n"


class WorkerHttpError(Exception):
    """The worker did not answer properly; `kind` is the phrase a client may see."""

    kind = "the connection failed"


class ConnectFailed(WorkerHttpError):
    kind = "cannot connect"

    def __init__(self, os_error: BaseException) -> None:
        super().__init__(f"cannot connect: {os_error!r}")
        self.os_error = os_error


class Disconnected(WorkerHttpError):
    kind = "closed the connection"


class CutOff(WorkerHttpError):
    kind = "the response was cut off"


class Malformed(WorkerHttpError):
    kind = "sent a malformed response"


class TooLarge(WorkerHttpError):
    kind = "the worker's answer was larger than meshgate reads"


@dataclass(frozen=True)
class Origin:
    """Where a URL's requests go, and what its request line and Host header say."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    target: str  # path and query
    host_header: str


@lru_cache(maxsize=4096)
def origin_of(url: str) -> Origin:
    """A URL parsed once: workers' addresses and routes are few and repeat."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    raw, port = parsed.raw_host, parsed.port or (443 if parsed.scheme == "https" else 80)
    named = f"[{raw}]" if ":" in raw else raw
    # An IPv6 literal's zone id is %-encoded in a URL (`fe80::1%25eth0`); a socket wants it
    # plain. A name stays as the URL has it (IDNA already applied).
    host = (parsed.host or raw) if ":" in raw else raw
    default = parsed.port is None or parsed.is_default_port()
    target = parsed.raw_path_qs or "/"
    return Origin(
        (parsed.scheme, host, port),
        host,
        port,
        parsed.scheme == "https",
        target,
        named if default else f"{named}:{port}",
    )


def request_head(origin: Origin, method: str, headers: dict[str, str], length: int) -> bytes:
    """The request line and headers, checked for what would split or end the block."""
    lines = [f"{method} {origin.target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
    for name, value in headers.items():
        if not _safe(name) or not _safe(value) or ":" in name:
            raise ValueError(f"header {name!r} has a character a header may not carry")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {length}\r\n")
    # surrogateescape: a client's header bytes that are not UTF-8 (aiohttp's server keeps
    # them as surrogates) go to the worker as the client sent them.
    return "".join(lines).encode("utf-8", "surrogateescape") + FIXED_HEADERS + b"\r\n"


def _safe(text: str) -> bool:
    return "\r" not in text and "\n" not in text and "\0" not in text


class WorkerResponse:
    """A worker's answer: status and headers (names lower-cased) once they arrived; the
    body by `read()` (whole) or `readany()` (what has come, b"" at its end)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_closed",
        "_complete",
        "_conn",
        "_error",
        "_head",
        "_head_bytes",
        "_headers",
        "_raw",
        "_reusable",
        "_waiter",
        "content_type",
        "heard",
        "status",
        "unparsed",
    )

    def __init__(self, conn: _Connection, deadline: float) -> None:
        self.status = 0
        self.content_type: str | None = None  # the one header the forwarder relays
        self._headers: dict[str, str] | None = None
        self._conn = conn
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self.unparsed = 0  # bytes read since httptools last handed over a part
        self.heard = False  # a byte of it came: the worker had the request
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._reusable = False
        self._closed = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head: asyncio.Future[None] = conn.loop.create_future()
        conn.deadline.set(deadline)

    # What the reader calls.
    async def read(self) -> bytes:
        """The whole answer; `TooLarge` when it is over MAX_WHOLE_BYTES."""
        while not self._complete and self._buffered <= MAX_WHOLE_BYTES:
            self._conn.resume()  # read past HIGH_WATER: the whole answer is wanted
            await self._wait()
        if self._buffered > MAX_WHOLE_BYTES:
            raise TooLarge(f"the answer is over {MAX_WHOLE_BYTES} bytes")
        self._buffered = 0
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def readany(self) -> bytes:
        if not self._chunks and not self._complete:
            await self._wait()
        if not self._chunks:
            return b""
        chunks, self._chunks = self._chunks, deque()
        self._buffered = 0
        self._conn.resume()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers, names lower-cased (made when first asked for)."""
        if self._headers is None:
            raw = self._raw
            self._headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in raw}
        return self._headers

    def at_eof(self) -> bool:
        """The answer has ended and everything read from it has been taken."""
        return self._complete and not self._chunks

    def close(self) -> None:
        """Done with the answer: its connection goes back to the pool if the answer ended
        and allows it, else it is closed (an unfinished generation is cancelled)."""
        if self._closed:
            return
        self._closed = True
        self._conn.disarm(self)
        self._conn.release(self._complete and self._reusable and self._error is None)

    async def __aenter__(self) -> WorkerResponse:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # What the connection calls.
    def _header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:  # raised through the parser: Malformed
            raise ValueError(f"the answer's headers are over {MAX_HEAD_BYTES} bytes")
        if self.status:  # a trailer: counted, never taken for a header
            return
        self._raw.append((name, value))
        if len(name) == 12 and name.lower() == b"content-type":
            self.content_type = value.decode("latin-1")

    def _headers_done(self, status: int) -> None:
        if status < 200:  # an informational answer: the real one follows
            self._raw.clear()
            self.content_type = None
            return
        self.status = status
        if not self._head.done():
            self._head.set_result(None)

    def _body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _done(self, reusable: bool) -> None:
        if self.status == 0:
            return  # the end of an informational answer
        self._complete, self._reusable = True, reusable
        self._conn.disarm(self)
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        self._conn.disarm(self)
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: a caller that left never sees it
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def _lost(self, exc: BaseException | None) -> None:
        """The connection closed: the end of an answer framed by its close, else a failure."""
        if self.status and exc is None and _ends_at_close(self.headers):
            self._done(False)
        elif self.status or self.heard:  # a part of the head, or an informational answer
            self._fail(CutOff("the connection closed before the answer ended"))
        else:
            self._fail(Disconnected("the connection closed before an answer"))

    def expire(self) -> None:
        self._fail(TimeoutError("the worker did not answer in time"))
        self._conn.abort()


def _ends_at_close(headers: dict[str, str]) -> bool:
    return "content-length" not in headers and "transfer-encoding" not in headers


class _Connection(asyncio.Protocol):
    """One keep-alive connection to one origin; at most one answer in flight."""

    def __init__(
        self, owner: WorkerHttp, key: tuple[str, str, int], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.owner = owner
        self.key = key  # its origin's: the pool it goes back to
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: WorkerResponse | None = None
        self.idle_since = 0.0
        self.closed = False
        self.paused = False
        self.out_of_step = False
        self.progressed = False  # the parser handed over a part of the answer in this read
        self.deadline = Deadline(loop, self._expired)  # the answer in flight's

    # asyncio's side.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # bytes nobody asked for: the stream is out of step
            self.out_of_step = True
            self.abort()
            return
        response = self.response
        response.heard, self.progressed = True, False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._malformed(response, "the worker switched protocols")
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
            self._malformed(response, str(cause))
        else:
            # httptools holds an unfinished header (or trailer) line whole, copying it on
            # each read: one that never ends is cut off here, not at the deadline.
            response.unparsed = 0 if self.progressed else response.unparsed + len(data)
            if response.unparsed > MAX_HEAD_BYTES:
                self._malformed(response, f"a header line is over {MAX_HEAD_BYTES} bytes")

    def _malformed(self, response: WorkerResponse, why: str) -> None:
        response._fail(Malformed(why))
        self.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.deadline.cancel()
        self.owner._forget(self)
        if self.response is not None:
            self.response._lost(exc)

    # httptools' side. An answer to no request (a second one in the same read) puts
    # the connection out of step: it is ignored, and the connection never reused.
    def on_message_begin(self) -> None:
        if self.response is None or self.response.status:
            self.out_of_step = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.progressed = True
        if self.response is not None and not self.out_of_step:
            self.response._header(name, value)

    def on_headers_complete(self) -> None:
        self.progressed = True
        if self.response is not None and not self.out_of_step:
            self.response._headers_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.progressed = True
        if self.response is not None and not self.out_of_step:
            self.response._body(body)

    def on_message_complete(self) -> None:
        self.progressed = True
        if self.response is not None and not self.out_of_step:
            self.response._done(self.parser.should_keep_alive())

    # The client's side.
    def send(self, head: bytes, body: bytes, deadline: float) -> WorkerResponse:
        assert self.transport is not None
        self.response = WorkerResponse(self, deadline)
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return self.response

    def disarm(self, response: WorkerResponse) -> None:
        if self.response is response:  # not a later answer's deadline
            self.deadline.clear()

    def _expired(self) -> None:
        if self.response is not None:
            self.response.expire()

    def release(self, reusable: bool) -> None:
        self.response = None
        if reusable and not self.closed and not self.out_of_step:
            self.resume()
            self.idle_since = self.loop.time()
            self.owner._give_back(self)
        else:
            self.abort()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """The idle connections to one origin, the most recently used first."""

    def __init__(self) -> None:
        self.idle: list[_Connection] = []

    def take(self, now: float) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < now - IDLE_SECS:
                conn.abort()
                continue
            return conn
        return None

    def sweep(self, now: float) -> None:
        """Close the connections idle for longer than IDLE_SECS (the oldest come first)."""
        while self.idle and self.idle[0].idle_since < now - IDLE_SECS:
            self.idle.pop(0).abort()

    def forget(self, conn: _Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().abort()


class WorkerHttp:
    """POSTs to workers on pooled connections; created once per node."""

    def __init__(self, connect_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._tls: ssl.SSLContext | None = None
        self._swept = 0.0

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> WorkerResponse:
        """Send `body` to `url` and wait for the answer's status and headers (its body is
        then the caller's to read, and `close()` is the caller's to call). Raises a
        `WorkerHttpError` or `TimeoutError` when the worker does not answer in `timeout`
        seconds, which also bounds reading the body."""
        loop = asyncio.get_running_loop()
        origin = origin_of(url)
        head = request_head(origin, "POST", headers, len(body))
        now = loop.time()
        deadline = now + timeout
        if now - self._swept > IDLE_SECS:
            self._sweep(now)
        pool = self._pools.get(origin.key)
        conn = pool.take(now) if pool is not None else None
        if conn is not None:
            try:
                return await self._exchange(conn, head, body, deadline)
            except Disconnected:
                if loop.time() - now > STALE_SECS:
                    raise
                # the worker closed an idle connection as it was reused: once more, anew
        conn = await self._connect(loop, origin, deadline)
        return await self._exchange(conn, head, body, deadline)

    async def _exchange(
        self, conn: _Connection, head: bytes, body: bytes, deadline: float
    ) -> WorkerResponse:
        response = conn.send(head, body, deadline)
        try:
            await response._head
        except BaseException:
            response.close()  # cancelled (the client left) or failed: the connection goes
            raise
        return response

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, deadline: float
    ) -> _Connection:
        timeout = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin.key, loop),
                    origin.host,
                    origin.port,
                    ssl=self._tls_context() if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(exc) from exc
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _give_back(self, conn: _Connection) -> None:
        pool = self._pools.get(conn.key) or self._pools.setdefault(conn.key, _Pool())
        pool.idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        pool = self._pools.get(conn.key)
        if pool is not None:
            pool.forget(conn)

    def _sweep(self, now: float) -> None:
        """Idle connections to workers no longer called (removed, or idle) are closed."""
        self._swept = now
        for key, pool in list(self._pools.items()):
            pool.sweep(now)
            if not pool.idle:
                del self._pools[key]

    def idle_connections(self) -> int:
        return sum(len(pool.idle) for pool in self._pools.values())

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
