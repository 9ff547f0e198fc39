"""What the processes of one node ask each other, over a Unix socket each in the data
dir (`process-<name>.sock`, mode 0600; the control process answers on `control.sock`).

A data-plane process serves, to its siblings only:
- `GET /alive`: 200 while its event loop runs (the control process's supervisor asks,
  and kills one that stops answering: node/plane/supervisor.py);
- `GET /metrics`: its own registry (node/plane/node_metrics.py merges them);
- `GET /traffic?minutes=M`: its traffic ring (node/traffic/gather.py merges them);
- `GET /applied/{index}`: 200 once its replica has applied `index` (a bounded wait),
  503 if it has not by then. A process that took a write asks every sibling this
  before it answers, so the next request reads the write from any process of the
  node, on any connection, without X-Meshgate-Min-Index. A sibling that does not
  confirm in time is named in the answer (`SiblingsBehind`).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from node.applied_wait import AppliedWaiter
from node.metrics import Metrics
from node.plane.paths import control_socket
from node.traffic.ring import MAX_MINUTES

MOST_BYTES: Final = 16 * 1024 * 1024  # of one answer (a process's metrics)
ALIVE: Final = "/alive"
RING_PATH: Final = "/traffic"
CONTROL: Final = "control"
PREFIX, SUFFIX = "process-", ".sock"


def process_socket(data_path: Path, name: str) -> Path:
    return data_path / f"{PREFIX}{name}{SUFFIX}"


async def serve_siblings(
    metrics: Metrics, applied: AppliedWaiter, wait_secs: float, path: Path
) -> web.AppRunner:
    """Answer this process's siblings at `path` (see the module's docstring)."""
    app = web.Application()

    async def own_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), content_type="text/plain")

    async def has_applied(request: web.Request) -> web.Response:
        index = request.match_info["index"]
        reached = await applied.wait(int(index), wait_secs, capped=False)
        return web.Response(status=200 if reached else 503, text=str(applied.applied()))

    async def own_traffic(request: web.Request) -> web.Response:
        minutes = request.query.get("minutes", "")
        if not minutes.isdigit() or not 1 <= int(minutes) <= MAX_MINUTES:
            return web.Response(status=400, text=f"minutes: 1..{MAX_MINUTES}")
        return web.json_response(metrics.traffic.raw(int(minutes)))

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get(ALIVE, alive)
    app.router.add_get("/metrics", own_metrics)
    app.router.add_get(RING_PATH, own_traffic)
    app.router.add_get("/applied/{index:[0-9]{1,18}}", has_applied)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by this process's previous run (the supervisor runs one at a time)
    await web.UnixSite(runner, str(path)).start()
    path.chmod(0o600)
    return runner


class SocketClients:
    """One client session per Unix socket, kept across requests (a write asks every
    sibling; the supervisor pings each child every second)."""

    def __init__(self) -> None:
        self._sessions: dict[Path, aiohttp.ClientSession] = {}

    async def get(self, path: Path, route: str, timeout: float) -> bytes | None:
        """As `get` below, on this socket's own session."""
        session = self._sessions.get(path)
        if session is None or session.closed:
            # A new connection each time (cheap on a Unix socket): a restarted sibling's
            # socket file is a new listener, and a kept one would reach the old.
            connector = aiohttp.UnixConnector(path=str(path), force_close=True)
            session = aiohttp.ClientSession(connector=connector)
            self._sessions[path] = session
        return await _read(session, route, timeout)

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


class Siblings:
    """The other processes of the node, as data-plane process `name` reaches them."""

    def __init__(self, data_path: Path, name: str) -> None:
        self.data_path = data_path
        self.name = name
        self.clients = SocketClients()

    def data_plane(self) -> dict[str, Path]:
        """The other data-plane processes' sockets, by process name."""
        found = {}
        for path in sorted(self.data_path.glob(f"{PREFIX}*{SUFFIX}")):
            process = path.name.removeprefix(PREFIX).removesuffix(SUFFIX)
            if process != self.name:
                found[process] = path
        return found

    def with_control(self) -> dict[str, Path]:
        return {CONTROL: control_socket(self.data_path), **self.data_plane()}

    async def caught_up(self, index: int, timeout: float) -> list[str]:
        """Wait until every other data-plane process has applied `index`, or `timeout`
        (one being restarted loads a snapshot that has it before it serves); the names
        of those that did not confirm it."""
        others = self.data_plane()
        asked = f"/applied/{index}"
        answers = await asyncio.gather(
            *(self.clients.get(path, asked, timeout + 1.0) for path in others.values())
        )
        return [name for name, answer in zip(others, answers, strict=True) if answer is None]

    async def close(self) -> None:
        await self.clients.close()


async def get(path: Path, route: str, timeout: float) -> bytes | None:
    """GET `route` over the Unix socket at `path`: the body of a 200, else None (no
    answer in time, another status, or more than MOST_BYTES)."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session:
        return await _read(session, route, timeout)


async def _read(session: aiohttp.ClientSession, route: str, timeout: float) -> bytes | None:
    try:
        async with session.get(
            f"http://localhost{route}", timeout=aiohttp.ClientTimeout(total=timeout)
        ) as answer:
            if answer.status != 200:
                return None
            body = await answer.content.read(MOST_BYTES + 1)
            return None if len(body) > MOST_BYTES else body
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
