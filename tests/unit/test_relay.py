"""The stream relay between an in-process worker and a client: every byte in order, each
as soon as it comes (the end is held back only once read), and a cut-short stream
ends with an error event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.auth import ANONYMOUS
from node.pipeline.request import InferenceRequest
from node.proxy.failures import STREAM_ENDED_EARLY
from node.proxy.relay import relay_stream
from node.proxy.worker_http import WorkerHttp
from node.workers.worker import Worker

PATH = "/v1/chat/completions"
EVENTS = [b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n', b"data: [DONE]\n\n"]
WORKER = cast(Worker, SimpleNamespace(id="w1", url="http://worker"))

Script = Callable[[web.StreamResponse], Awaitable[None]]


async def relayed(script: Script, read: Callable[[aiohttp.ClientResponse], Awaitable[Any]]) -> Any:
    """`script` writes the worker's stream; the gateway relays it; `read` reads the answer."""

    async def worker(request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        await script(out)
        await out.write_eof()
        return out

    async def gateway(request: web.Request) -> web.StreamResponse:
        ex = InferenceRequest(
            request, PATH, ANONYMOUS, b"{}", {}, "m", True, "rid", time.perf_counter()
        )
        resp = await client.post(worker_url, b"{}", {}, 30.0)
        first = await resp.readany()
        out, verdict = await relay_stream(ex, WORKER, resp, first, lambda *_: None)
        verdicts.append(verdict)
        return out

    verdicts: list[bool | None] = []
    servers = []
    for handler in (worker, gateway):
        app = web.Application()
        app.router.add_post(PATH, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
    worker_url = str(servers[0].make_url(PATH))
    client = WorkerHttp()
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(servers[1].make_url(PATH)) as answer:
                assert answer.status == 200
                assert answer.headers["X-Meshgate-Worker"] == "w1"
                assert answer.headers["Content-Type"] == "text/event-stream"
                got = await read(answer)
        finally:
            for server in servers:
                await server.close()
            await client.close()
    return got, verdicts


def test_each_event_reaches_the_client_before_the_worker_sends_the_next() -> None:
    async def main() -> None:
        reached: list[asyncio.Event] = [asyncio.Event() for _ in EVENTS]

        async def script(out: web.StreamResponse) -> None:
            for event, seen in zip(EVENTS, reached, strict=True):
                await out.write(event)
                await seen.wait()  # the client has this one: only then the next

        async def read(answer: aiohttp.ClientResponse) -> bytes:
            body = b""
            for seen in reached:
                while body.count(b"\n\n") < reached.index(seen) + 1:
                    body += await answer.content.readany()
                seen.set()
            return body + await answer.content.read()

        body, verdicts = await relayed(script, read)
        assert body == b"".join(EVENTS)
        assert verdicts == [True]

    asyncio.run(asyncio.wait_for(main(), 30))


def relayed_whole(events: list[bytes]) -> tuple[bytes, list[bool | None]]:
    """The answer to a worker that writes `events` at once."""

    async def script(out: web.StreamResponse) -> None:
        await out.write(b"".join(events))

    async def read(answer: aiohttp.ClientResponse) -> bytes:
        return await answer.read()

    return asyncio.run(asyncio.wait_for(relayed(script, read), 30))  # type: ignore[no-any-return]


def test_a_stream_read_whole_is_relayed_whole() -> None:
    assert relayed_whole(EVENTS) == (b"".join(EVENTS), [True])


def test_a_stream_without_its_last_event_ends_with_an_error_event() -> None:
    body, verdicts = relayed_whole(EVENTS[:2])
    sent = b"".join(EVENTS[:2])
    assert body.startswith(sent)
    error = orjson.loads(body[len(sent) :].split(b"data: ")[1])
    assert error["error"]["message"] == STREAM_ENDED_EARLY
    assert verdicts == [False]
