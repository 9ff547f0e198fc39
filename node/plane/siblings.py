"""What the processes of one node ask each other, over a Unix socket each in the data
dir (`process-<name>.sock`, mode 0600; the control process answers on `control.sock`).

A data-plane process serves, to its siblings only:
- `GET /alive`: 200 while its event loop runs (the control process's supervisor asks,
  and kills one that stops answering: node/plane/supervisor.py);
- `GET /metrics`: its own registry (node/plane/node_metrics.py merges them);
- `GET /traffic?minutes=M`: its traffic ring (node/traffic/gather.py merges them);
- `GET /limits`: its rate-limit counters (the control process sums them into the
  node's: node/plane/node_limits.py);
- `POST /shares`: its parts of the node's quota loans, from the control process;
  answered with what it wants and gave back (node/plane/node_shares.py);
- `GET /applied/{index}`: 200 once its replica has applied `index` (a bounded wait),
  503 if it has not by then. A process that took a write asks every sibling this
  before it answers, so the next request reads the write from any process of the
  node, on any connection, without X-Meshgate-Min-Index. A sibling that does not
  confirm in time is named in the answer (`SiblingsBehind`). One that has not
  confirmed within PROBE_AFTER is asked `/alive` too: a stopped or stuck process
  answers neither, and is named after ALIVE_SECS more instead of the whole wait (and
  at once, after ALIVE_SECS, on the writes that follow, until it answers again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web

from node.applied_wait import AppliedWaiter
from node.digits import ascii_int
from node.metrics import Metrics
from node.plane.paths import control_socket
from node.traffic.ring import MAX_MINUTES

MOST_BYTES: Final = 16 * 1024 * 1024  # of one answer (a process's metrics)
ALIVE: Final = "/alive"
RING_PATH: Final = "/traffic"
LIMITS: Final = "/limits"
SHARES: Final = "/shares"
PROBE_AFTER: Final = 0.5  # a sibling that has not confirmed a write by then is pinged
ALIVE_SECS: Final = 0.5  # and one that does not answer the ping in time is waited for no more
CONTROL: Final = "control"
PREFIX, SUFFIX = "process-", ".sock"


def process_socket(data_path: Path, name: str) -> Path:
    return data_path / f"{PREFIX}{name}{SUFFIX}"


async def serve_siblings(
    metrics: Metrics,
    applied: AppliedWaiter,
    wait_secs: float,
    path: Path,
    counters: Callable[[], Mapping[str, Any]],  # this process's rate-limit stats
    shares: Callable[[float, Mapping[str, Any]], Mapping[str, Any]],  # loans in, its report
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
        minutes = ascii_int(request.query.get("minutes"), max_digits=2)
        if minutes is None or not 1 <= minutes <= MAX_MINUTES:
            return web.Response(status=400, text=f"minutes: 1..{MAX_MINUTES} in ASCII digits")
        return web.json_response(metrics.traffic.raw(minutes))

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def limits(_: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counters()), content_type="application/json")

    async def borrow(request: web.Request) -> web.Response:
        try:
            sent = orjson.loads(await request.read())
            sent_at, part = sent["sent_at"], sent["part"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return web.Response(status=400, text="expected {sent_at, part}")
        if not isinstance(sent_at, float | int) or not isinstance(part, dict):
            return web.Response(status=400, text="expected {sent_at: a number, part: {}}")
        report = shares(float(sent_at), part)
        return web.Response(body=orjson.dumps(report), content_type="application/json")

    app.router.add_get(ALIVE, alive)
    app.router.add_get(LIMITS, limits)
    app.router.add_post(SHARES, borrow)
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
        return await _read(self._session(path), route, timeout)

    async def post(self, path: Path, route: str, body: bytes, timeout: float) -> bytes | None:
        """POST `body` to `route`: as `get`."""
        return await _read(self._session(path), route, timeout, body)

    def _session(self, path: Path) -> aiohttp.ClientSession:
        session = self._sessions.get(path)
        if session is None or session.closed:
            # A new connection each time (cheap on a Unix socket): a restarted sibling's
            # socket file is a new listener, and a kept one would reach the old.
            connector = aiohttp.UnixConnector(path=str(path), force_close=True)
            session = aiohttp.ClientSession(connector=connector)
            self._sessions[path] = session
        return session

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
        self.unresponsive: set[str] = set()  # missed the last ping: pinged at once next time

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
        confirmed = await asyncio.gather(
            *(self._confirms(name, path, index, timeout) for name, path in others.items())
        )
        return [name for name, ok in zip(others, confirmed, strict=True) if not ok]

    async def _confirms(self, name: str, path: Path, index: int, timeout: float) -> bool:
        """Does sibling `name` confirm, within `timeout`, that it has applied `index`? Not
        one that answers no ping meanwhile: stopped or stuck, it would answer nothing
        until the supervisor kills it (node/plane/supervisor.py)."""
        applied = asyncio.ensure_future(self.clients.get(path, f"/applied/{index}", timeout + 1.0))
        alive: asyncio.Future[bytes | None] | None = None
        try:
            first = 0.0 if name in self.unresponsive else PROBE_AFTER
            await asyncio.wait({applied}, timeout=first)
            if not applied.done():
                alive = asyncio.ensure_future(self.clients.get(path, ALIVE, ALIVE_SECS))
                await asyncio.wait({applied, alive}, return_when=asyncio.FIRST_COMPLETED)
                if not applied.done() and await alive is None:
                    self.unresponsive.add(name)
                    return False
            self.unresponsive.discard(name)  # it answers: wait for it as for any other
            return await applied is not None
        finally:
            applied.cancel()
            if alive is not None:
                alive.cancel()

    async def close(self) -> None:
        await self.clients.close()


async def get(path: Path, route: str, timeout: float) -> bytes | None:
    """GET `route` over the Unix socket at `path`: the body of a 200, else None (no
    answer in time, another status, or more than MOST_BYTES)."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session:
        return await _read(session, route, timeout)


async def _read(
    session: aiohttp.ClientSession, route: str, timeout: float, body: bytes | None = None
) -> bytes | None:
    try:
        async with session.request(
            "GET" if body is None else "POST",
            f"http://localhost{route}",
            data=body,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as answer:
            if answer.status != 200:
                return None
            body = await answer.content.read(MOST_BYTES + 1)
            return None if len(body) > MOST_BYTES else body
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
