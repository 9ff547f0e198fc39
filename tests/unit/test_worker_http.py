"""The forwarder's HTTP/1.1 client against real sockets on loopback: workers that answer
well, badly, slowly, in pieces, or not at all."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node.proxy import worker_http
from node.proxy.failures import TOO_LARGE, kind_of
from node.proxy.worker_http import (
    HIGH_WATER,
    ConnectFailed,
    CutOff,
    Disconnected,
    Malformed,
    TooLarge,
    WorkerHttp,
    origin_of,
)

T = TypeVar("T")
Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter
Handler = Callable[["Worker", Reader, Writer], Awaitable[None]]
MALFORMED = "sent a malformed response"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Worker:
    """A raw TCP server on loopback running `handler` on each connection it accepts."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()  # a connection was closed by the client

    async def __aenter__(self) -> Worker:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(self, reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        """One request read whole (its head and Content-Length bytes of body), kept."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes = OK
    ) -> None:
        """One request read, `answer` written."""
        await self.request(reader)
        writer.write(answer)
        await writer.drain()

    async def until_closed(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass
        self.closed.set()


def run(test: Callable[[WorkerHttp], Awaitable[None]]) -> None:
    async def main() -> None:
        client = WorkerHttp(connect_timeout=2)
        try:
            await test(client)
        finally:
            await client.close()

    asyncio.run(main())


def keep_alive(answer: bytes) -> Handler:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        while True:
            try:
                await worker.request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer)
            await writer.drain()

    return handler


def test_a_request_is_framed_and_its_connection_reused() -> None:
    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(OK)) as worker:
            await requests_on(client, worker)

    async def requests_on(client: WorkerHttp, worker: Worker) -> None:
        for n in range(3):
            resp = await client.post(worker.url, b'{"n": %d}' % n, {"X-Request-Id": "r1"}, 5)
            assert (resp.status, resp.headers["content-type"]) == (200, "application/json")
            assert await resp.read() == b"{}" and resp.at_eof()
            resp.close()
        assert worker.connections == 1 and client.idle_connections() == 1
        head, _, body = worker.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
        assert b"Host: " + worker.url.split("/")[2].encode() in lines
        assert {b"X-Request-Id: r1", b"Content-Length: 8", b"Accept-Encoding: identity"} <= set(
            lines
        )
        assert body == b'{"n": 0}'

    run(test)


def test_a_connection_the_worker_closed_while_idle_is_not_a_failure() -> None:
    async def once_per_connection(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.request(reader)
        writer.write(OK)  # keep-alive by HTTP/1.1's default, yet closed right after
        await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async with Worker(once_per_connection) as worker:
            for _ in range(3):
                resp = await client.post(worker.url, b"{}", {}, 5)
                assert await resp.read() == b"{}"
                resp.close()
            assert worker.connections == 3

    run(test)


def test_connection_close_is_honoured() -> None:
    answer = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")

    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(answer)) as worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            await resp.read()
            resp.close()
            assert client.idle_connections() == 0

    run(test)


@pytest.mark.parametrize(
    ("answer", "error", "kind"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
            CutOff,
            "the response was cut off",
        ),
        (b"HTTQ/9 two hundred\r\n\r\n", Malformed, MALFORMED),
        (b"", Disconnected, "closed the connection"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", Malformed, MALFORMED),
    ],
)
def test_a_broken_answer_is_a_failure_of_its_kind(
    answer: bytes, error: type[Exception], kind: str
) -> None:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async with Worker(handler) as worker:
            with pytest.raises(error) as caught:
                resp = await client.post(worker.url, b"{}", {}, 5)
                await resp.read()
            assert kind_of(caught.value) == kind
            assert client.idle_connections() == 0

    run(test)


def test_an_answer_framed_by_its_close_and_an_informational_one_first() -> None:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\nContent-Type: text/early\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nX-A: 1\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async with Worker(handler) as worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            assert (resp.status, resp.headers) == (201, {"x-a": "1", "connection": "close"})
            assert resp.content_type is None  # the informational answer's is not the answer's
            assert await resp.read() == b"until the end"
            resp.close()

    run(test)


TRAILED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nok\r\n0\r\nContent-Type: text/html\r\nX-Late: 1\r\n\r\n"
)


def test_a_trailer_is_never_taken_for_a_header() -> None:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.answer(reader, writer, TRAILED)
        await worker.until_closed(reader)

    async def test(client: WorkerHttp) -> None:
        async with Worker(handler) as worker, await client.post(worker.url, b"{}", {}, 5) as resp:
            assert await resp.read() == b"ok"
        assert resp.content_type == "text/event-stream"
        assert resp.headers == {"content-type": "text/event-stream", "transfer-encoding": "chunked"}

    run(test)


def test_the_deadline_bounds_the_answer_and_its_body() -> None:
    async def silent(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.until_closed(reader)

    async def trickle(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    worker_silent = Worker(silent)

    async def test(client: WorkerHttp) -> None:
        async with worker_silent, Worker(trickle) as streaming:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await client.post(worker_silent.url, b"{}", {}, 0.3)
            await asyncio.wait_for(worker_silent.closed.wait(), 5)  # the connection went
            resp = await client.post(streaming.url, b"{}", {}, 0.5)
            got = b""
            with pytest.raises(TimeoutError):
                while True:
                    got += await resp.readany()
            assert got.startswith(b"xx") and loop.time() - started < 3
            assert kind_of(TimeoutError()) == "timed out"

    run(test)


def test_a_pooled_connection_keeps_each_answer_s_own_deadline() -> None:
    """The connection's one timer (node/deadline.py) serves answers with longer and shorter
    deadlines in turn: each times out at its own, and a timer left by an earlier answer
    never cuts a later one short."""

    async def by_request(worker: Worker, reader: Reader, writer: Writer) -> None:
        while True:
            try:
                request = await worker.request(reader)
            except asyncio.IncompleteReadError:
                return
            if b"silent" in request:
                await worker.until_closed(reader)
                return
            if b"trickle" in request:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                while True:
                    writer.write(b"1\r\nx\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.05)
            if b"late" in request:  # past the deadline of the answer before
                await asyncio.sleep(0.25)
            writer.write(OK)
            await writer.drain()

    async def answered(client: WorkerHttp, worker: Worker, body: bytes, timeout: float) -> None:
        resp = await client.post(worker.url, body, {}, timeout)
        assert await resp.read() == b"{}"
        resp.close()

    async def test(client: WorkerHttp) -> None:
        async with Worker(by_request) as worker:
            await answered(client, worker, b"{}", 3600)
            with pytest.raises(TimeoutError):  # its own deadline, not the hour before
                await _guarded(client.post(worker.url, b'"silent"', {}, 0.2))
            await asyncio.wait_for(worker.closed.wait(), 5)
            await answered(client, worker, b"{}", 0.1)
            await answered(client, worker, b'"late"', 5)  # the 0.1 s timer fires meanwhile
            resp = await client.post(worker.url, b'"trickle"', {}, 0.2)
            with pytest.raises(TimeoutError):  # a stream on a pooled connection, too
                await _guarded(_drain(resp))
            resp.close()
            assert worker.connections == 2

    run(test)


async def _guarded(running: Awaitable[T]) -> T:
    """`running`'s outcome; a failed assertion (never a TimeoutError) if it hangs."""
    task = asyncio.ensure_future(running)
    done, _ = await asyncio.wait({task}, timeout=10)
    if not done:
        task.cancel()
    assert done, "no deadline ended it"
    return task.result()


async def _drain(resp: worker_http.WorkerResponse) -> None:
    while await resp.readany():
        pass


def test_a_stream_comes_as_it_is_sent_and_closing_it_early_closes_the_connection() -> None:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"6\r\nsecond\r\n")
        await writer.drain()
        await worker.until_closed(reader)

    go_on = asyncio.Event()
    worker = Worker(handler)

    async def test(client: WorkerHttp) -> None:
        async with worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            assert await resp.readany() == b"first" and not resp.at_eof()
            go_on.set()
            assert await resp.readany() == b"second"
            resp.close()  # before its end: the generation is cancelled
            await asyncio.wait_for(worker.closed.wait(), 5)
            assert client.idle_connections() == 0

    run(test)


def test_a_large_answer_pauses_the_socket_until_it_is_read() -> None:
    size = 5 * HIGH_WATER
    body = bytes(range(256)) * (size // 256)
    worker = Worker(keep_alive(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body))

    async def test(client: WorkerHttp) -> None:
        async with worker:
            resp = await client.post(worker.url, b"{}", {}, 10)
            await asyncio.sleep(0.2)  # the worker writes while nobody reads
            assert resp._conn.paused and resp._buffered < 2 * HIGH_WATER
            got = b""
            while chunk := await resp.readany():
                got += chunk
            assert got == body
            resp.close()
            whole = await client.post(worker.url, b"{}", {}, 10)
            assert len(await whole.read()) == size
            whole.close()
            assert worker.connections == 1

    run(test)


def test_a_header_with_a_line_break_is_never_sent() -> None:
    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(OK)) as worker:
            for headers in ({"X-A": "v\r\nX-Injected: 1"}, {"X-A\r\nX-B": "v"}, {"X-A: b": "v"}):
                with pytest.raises(ValueError):
                    await client.post(worker.url, b"{}", headers, 5)
            assert worker.connections == 0

    run(test)


def test_an_address_nobody_listens_on() -> None:
    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(OK)) as worker:
            url = worker.url
        with pytest.raises(ConnectFailed) as caught:
            await client.post(url, b"{}", {}, 5)
        assert kind_of(caught.value) == "connection refused"

    run(test)


def test_bytes_nobody_asked_for_drop_a_pooled_connection() -> None:
    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.answer(reader, writer)
        writer.write(OK)  # an answer to no request: the stream is out of step
        await writer.drain()
        await worker.until_closed(reader)

    worker = Worker(handler)

    async def test(client: WorkerHttp) -> None:
        async with worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            assert await resp.read() == b"{}"
            resp.close()
            await asyncio.wait_for(worker.closed.wait(), 5)
            assert client.idle_connections() == 0

    run(test)


def test_connections_idle_too_long_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_http, "IDLE_SECS", 0.05)

    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.answer(reader, writer)
        await worker.until_closed(reader)

    async def test(client: WorkerHttp) -> None:
        async with Worker(handler) as idle, Worker(keep_alive(OK)) as busy:
            resp = await client.post(idle.url, b"{}", {}, 5)
            await resp.read()
            resp.close()
            await asyncio.sleep(0.1)
            resp = await client.post(busy.url, b"{}", {}, 5)  # a call elsewhere sweeps
            await resp.read()
            resp.close()
            await asyncio.wait_for(idle.closed.wait(), 5)
            assert client.idle_connections() == 1

    run(test)


def test_origins() -> None:
    assert origin_of("http://h:80/a?b=1").host_header == "h"
    assert origin_of("http://h:8080/a?b=1").target == "/a?b=1"
    assert origin_of("https://[::1]:8443/x").host_header == "[::1]:8443"
    assert origin_of("https://h/x").key == ("https", "h", 443)
    zoned = origin_of("http://[fe80::1%25eth0]:8000/x")  # a link-local worker
    assert (zoned.host, zoned.host_header) == ("fe80::1%eth0", "[fe80::1%25eth0]:8000")
    with pytest.raises(ValueError):
        origin_of("ftp://h/x")


@pytest.mark.parametrize(
    "start",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: ",
        b"HTTP/1.1 200 OK\r\nX-Big",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\nX-Trailer: ",
    ],
)
def test_a_header_line_that_never_ends_is_cut_at_the_cap(start: bytes) -> None:
    """httptools keeps an unfinished header line whole (and grows it by copying): a worker
    that never ends one, in the head or the trailers, is cut at MAX_HEAD_BYTES, not at
    the deadline."""

    async def endless(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(start)
        with contextlib.suppress(ConnectionError):
            while not worker.closed.is_set():
                writer.write(b"a" * 65536)
                await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async with Worker(endless) as worker:
            with pytest.raises(Malformed, match="header line is over"):
                resp = await client.post(worker.url, b"{}", {}, 60)
                await resp.read()
            worker.closed.set()

    run(test)


def test_a_request_the_worker_took_then_dropped_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a pooled connection closed as it was reused gets the request once more: one
    the worker worked on before it closed (a generation that died) is a failure."""

    async def answers_once(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.answer(reader, writer)
        await worker.request(reader)
        await asyncio.sleep(0.1)  # works on it longer than STALE_SECS, then dies

    async def test(client: WorkerHttp) -> None:
        async with Worker(answers_once) as worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            await resp.read()
            resp.close()
            with pytest.raises(Disconnected) as caught:
                await client.post(worker.url, b'{"once": 1}', {}, 5)
            assert kind_of(caught.value) == "closed the connection"
            assert [r.endswith(b'{"once": 1}') for r in worker.requests] == [False, True]

    monkeypatch.setattr(worker_http, "STALE_SECS", 0.05)
    run(test)


@pytest.mark.parametrize("begun", [b"HTTP/1.1 103 Early Hints\r\n\r\n", b"HTTP/1.1 2"])
def test_a_request_whose_answer_had_begun_is_not_sent_again(begun: bytes) -> None:
    """A pooled connection closed at once, but after a byte of the answer: the worker had
    the request, so it is a failure (the answer was cut off), not a stale connection."""

    async def begins_then_dies(worker: Worker, reader: Reader, writer: Writer) -> None:
        await worker.answer(reader, writer)
        await worker.answer(reader, writer, begun)

    async def test(client: WorkerHttp) -> None:
        async with Worker(begins_then_dies) as worker:
            resp = await client.post(worker.url, b"{}", {}, 5)
            await resp.read()
            resp.close()
            with pytest.raises(CutOff):
                await client.post(worker.url, b"{}", {}, 5)
            assert len(worker.requests) == 2 and worker.connections == 1

    run(test)


def test_header_bytes_a_client_sent_that_are_not_utf8_pass_as_they_came() -> None:
    """aiohttp's server keeps such bytes as surrogates; encoding them as UTF-8 failed (a
    500 for the client)."""

    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(OK)) as worker:
            value = b"\xff\xfe caf\xc3\xa9".decode("utf-8", "surrogateescape")
            resp = await client.post(worker.url, b"{}", {"Accept": value}, 5)
            assert await resp.read() == b"{}"
            resp.close()
            assert b"\r\nAccept: \xff\xfe caf\xc3\xa9\r\n" in worker.requests[0]

    run(test)


def test_an_answer_smuggled_behind_another_never_reaches_a_second_caller() -> None:
    """Two callers at once on one worker, which answers the first with a second answer
    behind it (in the same write, or just after): the second caller only ever gets the
    answer to its own request."""
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"

    def echo(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handler(worker: Worker, reader: Reader, writer: Writer) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                body = (await worker.request(reader)).partition(b"\r\n\r\n")[2]
                writer.write(echo(body) + (smuggled if body == b"same write" else b""))
                await writer.drain()
                if body == b"just after":
                    writer.write(smuggled)
                    await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async def call(body: bytes) -> bytes:
            resp = await client.post(worker.url, body, {}, 5)
            try:
                return await resp.read()
            finally:
                resp.close()

        async with Worker(handler) as worker:
            for first in (b"same write", b"just after") * 5:
                got = await asyncio.gather(call(first), call(b"tenant 2"), call(b"tenant 3"))
                assert got == [first, b"tenant 2", b"tenant 3"]

    run(test)


def test_a_whole_answer_over_the_limit_is_a_failure_not_a_node_out_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size = 2**21  # more than one read
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, b"a" * size)

    async def endless(worker: Worker, reader: Reader, writer: Writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while not worker.closed.is_set():
                writer.write(b"8000\r\n" + b"a" * 0x8000 + b"\r\n")
                await writer.drain()

    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(big)) as sized, Worker(endless) as streaming:
            for worker in (sized, streaming):
                resp = await client.post(worker.url, b"{}", {}, 30)
                with pytest.raises(TooLarge) as caught:
                    await resp.read()
                resp.close()
                assert kind_of(caught.value) == TOO_LARGE
            streaming.closed.set()
            assert client.idle_connections() == 0

    monkeypatch.setattr(worker_http, "MAX_WHOLE_BYTES", 10000)
    run(test)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_an_https_worker_s_certificate_is_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A self-signed certificate is refused (nothing is sent); trusted, the same worker
    answers."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def test(client: WorkerHttp) -> None:
        async with Worker(keep_alive(OK), tls=context) as worker:
            with pytest.raises(ConnectFailed) as caught:
                await client.post(worker.url, b"{}", {}, 5)
            assert kind_of(caught.value) == "TLS handshake failed" and not worker.requests
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            trusting = WorkerHttp()
            resp = await trusting.post(worker.url, b"{}", {}, 5)
            assert (resp.status, await resp.read()) == (200, b"{}")
            resp.close()
            await trusting.close()

    run(test)
