"""Live updates: a WebSocket client on node A sees, in commit order, a change made on node C."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import requests

from tests.cluster.conftest import Mesh
from tests.support import strong

ADMIN_KEY = strong("admin-key-for-ws")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_a_client_on_one_node_sees_changes_made_on_another(tmp_path: Path) -> None:
    mesh = Mesh(tmp_path, extra=("--control-plane-api-keys", f"a:ops:admin:{ADMIN_KEY}"))
    try:
        mesh.wait_ready_with(ADMIN)
        a, _, c = mesh.urls

        async def watch() -> list[dict]:
            seen: list[dict] = []
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(
                    a.replace("http", "ws") + "/ws", headers=ADMIN, heartbeat=5
                ) as ws,
            ):
                hello = await ws.receive_json(timeout=10)
                assert hello["type"] == "hello" and hello["node"] == "n1"
                loop = asyncio.get_running_loop()
                for i in range(3):  # written through node C while we listen on node A
                    resp = await loop.run_in_executor(
                        None,
                        lambda i=i: requests.post(
                            c + "/ha/config",
                            json={"key": f"live-{i}", "value": i},
                            headers=ADMIN,
                            timeout=5,
                        ),
                    )
                    assert resp.status_code == 200
                while len([m for m in seen if m.get("op") == "config.set"]) < 3:
                    seen.append(await ws.receive_json(timeout=10))
            return seen

        messages = asyncio.run(watch())
        changes = [m for m in messages if m.get("op") == "config.set"]
        assert [m["object"]["key"] for m in changes] == ["live-0", "live-1", "live-2"]
        indexes = [m["index"] for m in changes]
        assert indexes == sorted(indexes) and len(set(indexes)) == 3
        assert all(m["by"].startswith("n3/") and m["ok"] for m in changes)
    finally:
        mesh.stop()
