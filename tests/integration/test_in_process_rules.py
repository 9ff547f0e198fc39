"""A bad control-plane write is refused with a 400 before anything enters the log (and
a WASM registration the log refuses leaves no file behind).

One standalone node runs in this process (`node.web.create_app` behind aiohttp's
`TestServer`, a real single-voter Raft on loopback), so each case is one request
and one read of the applied index, without spawning a process. A good write in
the same test moves the index: the check that nothing moved could fail.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from mesh import state
from node import config as node_config
from node.app import NODE, Node
from node.errors import ApiError
from node.web import create_app
from tests.support import MESH_SECRET, strong
from tests.wasm_components import module_bytes

# The guards keep the principal under a string key of the request (node/api/guards.py);
# aiohttp warns of that, and this process turns warnings into errors. Out of process
# it is one log line; a web.RequestKey there would let this mark go.

ADMIN = strong("in-process-admin")
HEADERS = {"Authorization": f"Bearer {ADMIN}"}

Scenario = Callable[[ClientSession, str, Node], Awaitable[None]]


def _config(tmp_path: Path, *extra: str) -> node_config.Config:
    parser = argparse.ArgumentParser()
    node_config.add_arguments(parser)
    argv = ["--node-name", "n1", "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1"]
    argv += ["--mesh-secret", MESH_SECRET, "--control-plane-api-keys", f"a:ops:admin:{ADMIN}"]
    argv += ["--drain-delay-secs", "0", *extra]
    return node_config.load(parser.parse_args(argv), environ={})


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path, *extra: str) -> AsyncIterator[tuple[ClientSession, str, Node]]:
    app = create_app(_config(tmp_path, *extra))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            node = app[NODE]
            await _until(lambda: _settled(node), "the node to announce itself and its keys")
            yield session, str(server.make_url("")).rstrip("/"), node
    finally:
        await server.close()


def _settled(node: Node) -> bool:
    """The node's own writes at start are in (after them, only the tests write)."""
    state = node.raft.state
    return node.name in state.members and state.auth_required


async def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _run(tmp_path: Path, scenario: Scenario, *extra: str) -> None:
    async def main() -> None:
        async with _serving(tmp_path, *extra) as (session, url, node):
            await scenario(session, url, node)

    asyncio.run(main())


# (method, path, body, what the 400 says): each breaks a rule of its write.
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("PUT", "/policies/m1", {"policy": "cache_aware", "params": {"nope": 1}}, "nope"),
    ("PUT", "/policies/m1", {"policy": "no_such_policy"}, "no_such_policy"),
    ("POST", "/api/admin/tenants", {"name": "t" * 64}, "name"),
    ("POST", "/api/keys", {"namespace": "t1", "expiresInSecs": -60}, "expiresInSecs"),
    ("POST", "/workers", {"url": "http://127.0.0.1:9/w", "priority": -1}, "priority"),
    ("POST", "/ha/config", {"key": "", "value": 1}, "key"),
]


def test_a_bad_write_is_answered_400_and_never_committed(tmp_path: Path) -> None:
    async def scenario(session: ClientSession, url: str, node: Node) -> None:
        made = await session.post(f"{url}/api/admin/tenants", json={"name": "t1"}, headers=HEADERS)
        assert made.status == 201, await made.text()
        for method, path, body, named in REFUSED:
            before = node.raft.state.applied_index
            answer = await session.request(method, url + path, json=body, headers=HEADERS)
            text = await answer.text()
            assert answer.status == 400, (path, body, text)
            assert named in text, (path, text)
            assert node.raft.state.applied_index == before, (path, body)
        assert "t1" in node.raft.state.tenants and len(node.raft.state.tenants) == 1

    _run(tmp_path, scenario)


# (op, args, what the refusal says): commands that break their op's rule.
BROKEN: list[tuple[str, dict[str, Any], str]] = [
    ("tenant.create", {"name": ""}, "tenant name must be a non-empty string"),
    ("ratelimit.set", {"scope": "*", "requests_per_second": 1, "burst": 0}, "burst"),
    ("member.set_draining", {"name": "n1", "draining": "yes"}, "draining must be"),
    ("worker.update", {"id": "w", "changes": {}}, "changes must be a non-empty mapping"),
]


def test_commit_asks_the_rule_apply_asks(tmp_path: Path) -> None:
    """Whatever the handler checked, `Node.commit` refuses a command that breaks its
    op's rule with the message and code apply would give it, without submitting it."""

    async def scenario(session: ClientSession, url: str, node: Node) -> None:
        before = node.raft.state.applied_index
        for op, args, problem in BROKEN:
            with pytest.raises(ApiError) as refused:
                await node.commit(op, args, None)
            assert refused.value.status == 400 and refused.value.code == "INVALID"
            assert problem in refused.value.message, op
            assert node.raft.state.applied_index == before, op
        # A command that keeps its rule does reach the log.
        await node.commit("config.set", {"key": "moved", "value": 1}, None)
        assert node.raft.state.applied_index > before

    _run(tmp_path, scenario)


def test_a_wasm_registration_refused_at_commit_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The component read for a registration the log refuses (here: the mesh is full) is
    removed again, with its compiled artifact; one a record names stays."""
    monkeypatch.setattr(state, "MAX_WASM_MODULES", 1)

    def module(name: str, component: str) -> dict[str, Any]:
        data = base64.b64encode(module_bytes(component)).decode()
        return {"name": name, "wasm_base64": data, "attach_points": [{"Middleware": "OnRequest"}]}

    def files(node: Node) -> set[Path]:
        data = node.config.data_path
        return {p for d in ("blobs/sha256", "wasm-artifacts") for p in (data / d).glob("*")}

    async def scenario(session: ClientSession, url: str, node: Node) -> None:
        first = await session.post(
            f"{url}/wasm", json={"modules": [module("auth", "auth")]}, headers=HEADERS
        )
        assert first.status == 200, await first.text()
        kept = files(node)
        assert len(kept) == 2  # the component and its artifact
        before = node.raft.state.applied_index
        full = await session.post(
            f"{url}/wasm", json={"modules": [module("trap", "trap")]}, headers=HEADERS
        )
        body = await full.json()
        assert full.status == 422 and body["error"]["outcome"] == "rejected", body
        assert node.raft.state.applied_index == before + 1  # committed, and refused
        assert files(node) == kept

    _run(tmp_path, scenario, "--enable-wasm")
