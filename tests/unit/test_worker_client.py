"""The worker client against an in-process aiohttp server: credentials sent, redirects not
followed, answers capped, failures reported as fixed phrases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from node.proxy.failures import REDIRECTED, TOO_LARGE
from node.proxy.upstream import make_session
from node.workers.client import WorkerCallFailed, WorkerClient
from node.workers.credentials import Target


def worker_app(seen: list[web.Request]) -> web.Application:
    async def info(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"model_path": "m"})

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/info")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def streamed(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 1000)
        return resp

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    async def text(_: web.Request) -> web.Response:
        return web.Response(text="not json", status=500)

    app = web.Application()
    app.router.add_get("/info", info)
    app.router.add_post("/info", info)
    app.router.add_get("/moved", moved)
    app.router.add_get("/big", big)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/slow", slow)
    app.router.add_get("/text", text)
    return app


Scenario = Callable[[WorkerClient, Target, list[web.Request]], Coroutine[Any, Any, None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        seen: list[web.Request] = []
        async with serving(worker_app(seen)) as url:
            session = make_session()
            try:
                target = Target(url, {"Authorization": "Bearer sk-worker"})
                await scenario(WorkerClient(session, max_body=4096), target, seen)
            finally:
                await session.close()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def test_sends_the_credential_and_reads_json() -> None:
    async def scenario(client: WorkerClient, target: Target, seen: list[web.Request]) -> None:
        answer = await client.get(target, "/info", timeout=5)
        assert answer.ok and answer.json() == {"model_path": "m"}
        assert answer.problem("/info") is None
        await client.call("POST", target, "/info", timeout=5)
        assert [r.method for r in seen] == ["GET", "POST"]
        assert all(r.headers["Authorization"] == "Bearer sk-worker" for r in seen)

    run(scenario)


def test_a_redirect_is_reported_never_followed() -> None:
    async def scenario(client: WorkerClient, target: Target, seen: list[web.Request]) -> None:
        answer = await client.get(target, "/moved", timeout=5)
        assert answer.status == 302 and answer.redirected and not answer.ok
        assert answer.problem("/moved") == f"/moved answered 302: {REDIRECTED}"
        assert seen == []  # /info was not asked on the worker's say-so

    run(scenario)


@pytest.mark.parametrize("path", ["/big", "/streamed"])
def test_an_answer_over_the_cap_is_refused(path: str) -> None:
    async def scenario(client: WorkerClient, target: Target, _: list[web.Request]) -> None:
        with pytest.raises(WorkerCallFailed) as failed:
            await client.get(target, path, timeout=5)
        assert str(failed.value) == TOO_LARGE

    run(scenario)


def test_failures_are_fixed_phrases() -> None:
    async def scenario(client: WorkerClient, target: Target, _: list[web.Request]) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(WorkerCallFailed) as failed:
            await client.get(target, "/slow", timeout=0.2)
        assert loop.time() - t0 < 2.0
        assert str(failed.value) == "did not answer: timed out"
        assert isinstance(failed.value.detail, TimeoutError)
        gone = Target("http://127.0.0.1:9", {})  # discard port: nothing listens
        with pytest.raises(WorkerCallFailed) as refused:
            await client.get(gone, "/info", timeout=2)
        assert str(refused.value) == "did not answer: connection refused"
        assert "127.0.0.1" not in str(refused.value)

    run(scenario)


def test_a_non_json_error_answer_keeps_its_text() -> None:
    async def scenario(client: WorkerClient, target: Target, _: list[web.Request]) -> None:
        answer = await client.get(target, "/text", timeout=5)
        assert answer.json() is None and answer.text() == "not json"
        assert answer.problem("/text") == "/text answered 500"

    run(scenario)
