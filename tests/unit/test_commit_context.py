"""The commit context a request's handler runs in: routes that may commit (writes of
control state) are installed inside one (their commands' request ids, Idempotency-Key),
inference routes and reads without (they never commit)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node import idempotency
from node.api.catalog import WITHOUT_FEED
from node.api.register import register
from node.api.table import Audience, Route

API = Path(__file__).resolve().parents[2] / "node" / "api"


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


def _committing_functions() -> dict[tuple[str, str], bool]:
    """Every top-level function and method of node/api, by (module, name): does it call
    `.commit(`, itself or through another node/api function (named alike; a false match
    only asks more routes to commit)?"""
    calls: dict[tuple[str, str], set[str]] = {}
    for path in sorted(API.glob("*.py")):
        module = f"node.api.{path.stem}"
        for top in ast.parse(path.read_text()).body:
            defs = [top] if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) else []
            if isinstance(top, ast.ClassDef):
                defs = [
                    d for d in top.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
            for d in defs:  # nested functions (a handler made by a factory) count as its own
                named = {
                    c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id
                    for c in ast.walk(d)
                    if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute | ast.Name)
                }
                calls[(module, d.name)] = named
    committing = {"commit"}
    while more := {name for (_, name), named in calls.items() if named & committing} - committing:
        committing |= more
    return {key: bool(named & committing) for key, named in calls.items()}


def test_every_route_whose_handler_commits_gets_the_commit_context() -> None:
    """A handler that commits on a route without `may_commit` would lose its request ids,
    its Idempotency-Key replay and Meshgate-Request-Id (the context is put only around
    routes that may commit): e.g. an inference route (PROTECTED, PUBLISHED) that began to
    commit."""
    commits = _committing_functions()
    found = {
        f"{r.method} {r.path}": r.may_commit
        for r in WITHOUT_FEED
        if commits.get((r.handler.__module__, r.handler.__qualname__.split(".")[0]), False)
    }
    assert {"PUT /workers/{worker_id}", "POST /api/keys", "DELETE /api/keys/{key_id}"} <= set(found)
    assert "POST /v1/chat/completions" not in found and len(found) >= 30
    assert [route for route, may in found.items() if not may] == []
