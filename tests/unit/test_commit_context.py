"""The commit context a request's handler runs in: writes of control state get one (their
commands' request ids, Idempotency-Key), inference routes none (they never commit)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node import idempotency
from node.api.table import INSTALLED, Audience, Installed, Route


def route(method: str, path: str, audience: Audience) -> Route:
    async def handler(_: web.Request) -> web.Response:
        commits = idempotency.current()
        return web.json_response({"key": None if commits is None else commits.key})

    return Route(method, path, handler, audience, path, "t", "s", answers={200: "ok"})


def test_writes_get_a_commit_context_and_inference_none() -> None:
    app = web.Application(middlewares=[idempotency.commit_context])
    routes = [
        route("POST", "/workers", Audience.CONTROL_PLANE),
        route("POST", "/v1/chat/completions", Audience.PROTECTED),
        route("POST", "/published/{ref}", Audience.PUBLISHED),
        route("GET", "/workers", Audience.CONTROL_PLANE),
    ]
    app[INSTALLED] = Installed.of(
        (app.router.add_route(r.method, r.path, r.handler), r) for r in routes
    )

    async def scenario() -> dict[str, Any]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            seen = {}
            for method, path in [
                ("POST", "/workers"),
                ("POST", "/v1/chat/completions"),
                ("POST", "/published/m"),
                ("GET", "/workers"),
            ]:
                answer = await client.request(method, path, headers={"Idempotency-Key": "k1"})
                seen[f"{method} {path}"] = (await answer.json())["key"]
            return seen

    assert asyncio.run(scenario()) == {
        "POST /workers": "k1",
        "POST /v1/chat/completions": None,
        "POST /published/m": None,
        "GET /workers": None,
    }
