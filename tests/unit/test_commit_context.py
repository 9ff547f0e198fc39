"""The commit context a request's handler runs in: routes that may commit (writes of
control state) are installed inside one (their commands' request ids, Idempotency-Key),
inference routes and reads without (they never commit)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node import idempotency
from node.api.register import register
from node.api.table import Audience, Route


def route(method: str, path: str, audience: Audience) -> Route:
    async def handler(_: web.Request) -> web.Response:
        commits = idempotency.current()
        return web.json_response({"key": None if commits is None else commits.key})

    checks = audience in (Audience.PROTECTED, Audience.PUBLISHED)  # no node for a guard here
    return Route(
        method,
        path,
        handler,
        audience,
        path,
        "t",
        "s",
        answers={200: "ok"},
        checks_credentials=checks,
    )


def test_writes_get_a_commit_context_and_inference_none() -> None:
    app = web.Application()
    register(
        app,
        [
            route("POST", "/api/login", Audience.PUBLIC),
            route("POST", "/v1/chat/completions", Audience.PROTECTED),
            route("POST", "/published/{ref}", Audience.PUBLISHED),
            route("GET", "/v1/models", Audience.PUBLIC),
        ],
    )

    async def scenario() -> dict[str, Any]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            seen = {}
            for method, path in [
                ("POST", "/api/login"),
                ("POST", "/v1/chat/completions"),
                ("POST", "/published/m"),
                ("GET", "/v1/models"),
            ]:
                answer = await client.request(method, path, headers={"Idempotency-Key": "k1"})
                seen[f"{method} {path}"] = (await answer.json())["key"]
            return seen

    assert asyncio.run(scenario()) == {
        "POST /api/login": "k1",
        "POST /v1/chat/completions": None,
        "POST /published/m": None,
        "GET /v1/models": None,
    }
