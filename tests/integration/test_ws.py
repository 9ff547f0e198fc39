"""`GET /ws`, the WebSocket of live control-state changes.

Against a real node (`meshgate serve`): the handshake's credentials, the hello,
changes made over HTTP arriving in commit order with their log index, secrets
kept out, and a clean 1001 close when the node stops. In process, against the
handler with a fake node: a client that falls behind is closed with 1013, a
tenant's user sees only its tenant, and a revoked key is disconnected.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import orjson
import pytest
import requests
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from mesh.events import Applied, AppliedStream
from mesh.state import ControlState
from node.api import live
from node.app import NODE, Node
from node.auth import Authenticator
from node.errors import error_middleware
from tests.integration.conftest import Cluster
from tests.support import free_port, strong, wait_for

API_KEY = strong("client-key-ws")
ADMIN = strong("admin-key-ws")
USER = strong("user-key-ws")
WORKER_SECRET = "sk-upstream-SECRET-ws-123"
FLAGS = (
    "--api-key",
    API_KEY,
    "--control-plane-api-keys",
    f"a:ops:admin:{ADMIN}",
    f"u:viewer:user:{USER}",
)
Message = dict[str, Any]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def node(module_cluster: Cluster) -> Iterator[str]:
    n = module_cluster.node(*FLAGS, ready=False)

    def announced() -> bool:  # so the first command (member.upsert) has been applied
        status = requests.get(n.url + "/ha/status", headers=_bearer(ADMIN), timeout=2).json()
        return bool(status["stores"]["members"] >= 1)

    wait_for(announced, what="node-1's membership applied")
    yield n.url


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws" + query


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> Message:
    msg = await ws.receive(timeout=timeout)
    assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
    data: Message = orjson.loads(msg.data)
    return data


async def until(
    ws: aiohttp.ClientWebSocketResponse,
    match: Callable[[Message], bool],
    seen: list[str] | None = None,
    timeout: float = 10.0,
) -> Message:
    """The first message that matches; every raw text read on the way goes to `seen`."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert msg.type is WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
        if seen is not None:
            seen.append(msg.data)
        data: Message = orjson.loads(msg.data)
        if match(data):
            return data


def run(scenario: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            return await scenario(session)

    return asyncio.run(main())


# -- against a real node -------------------------------------------------------------------------


def test_hello_then_a_config_change_with_its_log_index(node: str) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(ws_url(node), headers=_bearer(ADMIN)) as ws:
            hello = await receive(ws)
            assert hello["type"] == "hello" and hello["node"] == "node-1"
            assert isinstance(hello["applied_index"], int) and hello["applied_index"] >= 1
            async with session.post(
                node + "/ha/config", json={"key": "k", "value": 1}, headers=_bearer(ADMIN)
            ) as resp:
                assert resp.status == 200, await resp.text()
                version = (await resp.json())["version"]
            change = await until(ws, lambda m: m.get("op") == "config.set")
            assert change["type"] == "change"
            assert change["index"] == version > hello["applied_index"]
            assert change["ok"] is True and change["by"] == "node-1/a"
            assert change["object"] == {"key": "k", "value": 1, "expected_version": None}
            assert change["outcome"] == {"key": "k", "version": version}
            assert isinstance(change["at"], float)

            ping = {"type": "ping"}
            await ws.send_str(orjson.dumps(ping).decode())
            assert await until(ws, lambda m: m["type"] != "change") == {"type": "pong"}

    run(scenario)


def test_refusals_are_sent_to_admins(node: str) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(ws_url(node), headers=_bearer(ADMIN)) as ws:
            await receive(ws)
            body = {"key": "cas", "value": 2, "expected_version": 999}
            async with session.post(node + "/ha/config", json=body, headers=_bearer(ADMIN)) as r:
                assert r.status == 409
            change = await until(ws, lambda m: m.get("op") == "config.set")
            assert change["ok"] is False
            assert change["outcome"]["error"] == "version_mismatch"
            assert change["object"]["key"] == "cas"

    run(scenario)


def test_a_worker_api_key_never_reaches_the_socket(node: str) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        seen: list[str] = []
        async with session.ws_connect(ws_url(node), headers=_bearer(ADMIN)) as ws:
            await receive(ws)
            url = f"http://127.0.0.1:{free_port()}"
            body = {"url": url, "api_key": WORKER_SECRET}
            async with session.post(node + "/workers", json=body, headers=_bearer(ADMIN)) as r:
                assert r.status == 202, await r.text()
                worker_id = (await r.json())["worker_id"]
            change = await until(ws, lambda m: m.get("op") == "worker.add", seen)
            assert change["object"]["worker"]["id"] == worker_id
            assert change["object"]["worker"]["url"] == url
            assert "api_key" not in change["object"]["worker"]
            assert change["redacted"] == ["worker.api_key"]
            async with session.delete(node + f"/workers/{worker_id}", headers=_bearer(ADMIN)):
                pass
            await until(ws, lambda m: m.get("op") == "worker.remove", seen)
        assert seen and not any(WORKER_SECRET in text for text in seen)

    run(scenario)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (_bearer("wrong"), 401),
        (_bearer(USER), 403),  # a user with no tenant may watch nothing
        ({"Sec-WebSocket-Protocol": "bearer.wrong"}, 401),
    ],
)
def test_refused_handshakes(node: str, headers: dict[str, str], status: int) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with session.ws_connect(ws_url(node), headers=headers):
                pass
        assert refused.value.status == status

    run(scenario)
    # The same refusal without an upgrade shows the usual JSON error envelope.
    resp = requests.get(node + "/ws", headers=headers, timeout=5)
    assert resp.status_code == status
    assert resp.json()["error"]["message"]
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_plain_get_with_credentials_is_told_to_upgrade(node: str) -> None:
    resp = requests.get(node + "/ws", headers=_bearer(ADMIN), timeout=5)
    assert resp.status_code == 400
    assert "WebSocket" in resp.json()["error"]["message"]


def test_token_in_the_query_or_the_subprotocol(node: str) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(ws_url(node, f"?token={ADMIN}")) as ws:
            assert (await receive(ws))["type"] == "hello"
        protocol = f"bearer.{ADMIN}"
        async with session.ws_connect(ws_url(node), protocols=("meshgate.v1", protocol)) as ws:
            assert ws.protocol == protocol  # echoed, as browsers require
            assert (await receive(ws))["type"] == "hello"

    run(scenario)


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        ("send_str", "not json"),
        ("send_str", '{"type": "subscribe"}'),
        ("send_str", "[1, 2]"),
        ("send_bytes", b"\x00\x01"),
    ],
)
def test_garbage_from_the_client_closes_with_1003(node: str, send: str, reason: Any) -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(ws_url(node), headers=_bearer(ADMIN)) as ws:
            await receive(ws)
            await getattr(ws, send)(reason)
            while (msg := await ws.receive(timeout=10)).type is WSMsgType.TEXT:
                pass  # changes that were already on their way
            assert msg.type is WSMsgType.CLOSE
            assert ws.close_code == 1003
            assert msg.extra and "ping" in msg.extra

    run(scenario)


def test_node_shutdown_closes_clients_with_1001(cluster: Cluster) -> None:
    target = cluster.node(*FLAGS, ready=False)

    async def scenario(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(ws_url(target.url), headers=_bearer(ADMIN)) as ws:
            await receive(ws)
            target.proc.terminate()
            while (msg := await ws.receive(timeout=20)).type is WSMsgType.TEXT:
                pass
            assert msg.type is WSMsgType.CLOSE, msg
            assert ws.close_code == 1001

    run(scenario)
    assert target.proc.wait_exit(timeout=20) == 0


# -- in process, with a fake node ------------------------------------------------------------


class FakeNode:
    """What the handler reads of a node: a name, the stream, the state and the auth."""

    def __init__(self, auth: Authenticator) -> None:
        self.name = "fake-1"
        self.stream = AppliedStream()
        self.raft = SimpleNamespace(state=ControlState())
        self.auth = auth


async def serve(node: FakeNode, limit: int = 1000) -> TestServer:
    app = web.Application(middlewares=[error_middleware])
    app[NODE] = cast(Node, node)
    live.install(app, limit=limit)
    node.stream.bind(asyncio.get_running_loop())
    server = TestServer(app)
    await server.start_server()
    return server


def config_change(index: int) -> Applied:
    command = {"op": "config.set", "rid": f"r{index}", "at": 1.0, "by": "x", "args": {"key": "k"}}
    return Applied(index, command, {"ok": True, "value": {"key": "k", "version": index}})


def test_a_client_that_falls_behind_is_closed_with_1013() -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        node = FakeNode(Authenticator(None, []))  # nothing configured: anonymous admin
        server = await serve(node, limit=3)
        try:
            async with session.ws_connect(server.make_url("/ws")) as ws:
                assert (await receive(ws))["applied_index"] == 0
                for index in range(1, 11):  # delivered in one go, before its sender runs
                    node.stream.publish(config_change(index))
                while (msg := await ws.receive(timeout=10)).type is WSMsgType.TEXT:
                    pass
                assert msg.type is WSMsgType.CLOSE
                assert ws.close_code == 1013
                assert msg.extra and "reconnect" in msg.extra
            async with session.ws_connect(server.make_url("/ws")) as ws:  # and may come back
                assert (await receive(ws))["applied_index"] == 10
        finally:
            await server.close()

    run(scenario)


def test_a_tenant_user_sees_its_tenant_only_until_its_key_is_revoked() -> None:
    secret = "mg_acme_user_secret"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    record = {
        "id": "key-acme",
        "name": "acme-user",
        "tenant": "acme",
        "role": "user",
        "hash": digest,
        "status": "active",
        "expires_at": None,
    }
    keys = {"key-acme": record, "key-bolt": {**record, "id": "key-bolt", "tenant": "bolt"}}
    hashes = {digest: "key-acme"}
    store = SimpleNamespace(key_hashes=hashes, api_keys=keys, auth_required=True, token_versions={})
    auth = Authenticator(None, [], keys=lambda: store)

    def change(index: int, op: str, args: dict[str, Any]) -> Applied:
        command = {"op": op, "rid": f"r{index}", "at": 1.0, "by": "x", "args": args}
        return Applied(index, command, {"ok": True, "value": {"version": index}})

    async def scenario(session: aiohttp.ClientSession) -> None:
        node = FakeNode(auth)
        node.raft.state.api_keys = keys
        server = await serve(node)
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(server.make_url("/ws"))  # keys exist: no anonymous
            assert refused.value.status == 401
            async with session.ws_connect(server.make_url(f"/ws?token={secret}")) as ws:
                await receive(ws)
                node.stream.publish(change(1, "config.set", {"key": "k"}))
                node.stream.publish(change(2, "key.revoke", {"id": "key-bolt"}))
                node.stream.publish(change(3, "tenant.create", {"name": "bolt"}))
                node.stream.publish(change(4, "tenant.create", {"name": "acme"}))
                first = await receive(ws)
                assert (first["index"], first["op"]) == (4, "tenant.create")
                hashes.clear()  # the key is revoked in the replicated state...
                node.stream.publish(change(5, "key.revoke", {"id": "key-acme"}))
                msg = await ws.receive(timeout=10)  # ...and the socket goes with it
                assert msg.type is WSMsgType.CLOSE
                assert ws.close_code == 1008
        finally:
            await server.close()

    run(scenario)


def test_server_shutdown_closes_clients_with_1001_and_leaves_no_tasks() -> None:
    async def scenario(session: aiohttp.ClientSession) -> None:
        node = FakeNode(Authenticator(None, []))
        server = await serve(node)
        before = asyncio.all_tasks()
        async with session.ws_connect(server.make_url("/ws")) as ws:
            await receive(ws)
            closing = asyncio.create_task(server.close())
            msg = await ws.receive(timeout=10)
            assert msg.type is WSMsgType.CLOSE
            assert ws.close_code == 1001
            await closing
        assert server.app is not None and server.app[live.FEED].clients == 0
        names = {t.get_name() for t in asyncio.all_tasks() - before}
        assert not {"ws-send", "ws-revalidate", "ws-close"} & names

    run(scenario)
