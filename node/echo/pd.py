"""The echo worker's prefill/decode mode: it checks that both halves of a PD request met.

`--disaggregation-mode prefill` records the `bootstrap_room` of each request and
answers `GET /bootstrap/{room}` on its bootstrap port (`--bootstrap-port`, and
on its HTTP port too): this stands in for SGLang's KV bootstrap server. In
`--disaggregation-mode decode`, a request waits (at most `--bootstrap-wait-ms`)
until the prefill named by its `bootstrap_host` and `bootstrap_port` has seen its
room, as a real decode engine fetches the KV cache from there; if the prefill
half never arrives, the request fails with a 500 saying so. A request without
the bootstrap fields is a regular request, which a PD worker must never get: it
is refused with a 400 and counted. `/_stats` shows the rooms seen, for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from node.digits import ascii_int
from node.echo.httpio import BadRequest, error_response, json_response, read_json_object

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_ROOMS = 10_000  # rooms remembered (oldest forgotten first)
POLL_S = 0.02
FIELDS = ("bootstrap_host", "bootstrap_port", "bootstrap_room")


class PdRooms:
    """The rooms this worker has seen, and the requests that came without one."""

    def __init__(self, mode: str, wait_s: float) -> None:
        self.mode = mode
        self.wait_s = wait_s
        self.rooms: OrderedDict[int, str] = OrderedDict()  # room -> route
        self.regular_requests = 0
        self._session: aiohttp.ClientSession | None = None

    def remember(self, room: int, route: str) -> None:
        self.rooms[room] = route
        while len(self.rooms) > MAX_ROOMS:
            self.rooms.popitem(last=False)

    def stats(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "rooms": list(self.rooms),
            "regular_requests": self.regular_requests,
        }

    def reset(self) -> None:
        self.rooms.clear()
        self.regular_requests = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def bootstrap(self, request: web.Request) -> web.Response:
        """`GET /bootstrap/{room}`: 200 once this prefill has seen the room, else 404."""
        text = request.match_info["room"]
        digits = ascii_int(text.removeprefix("-"), max_digits=19)  # a 63-bit room
        if digits is None:
            return error_response(400, "room must be an integer", "invalid_request_error")
        room = -digits if text.startswith("-") else digits
        if room in self.rooms:
            return json_response({"room": room})
        return error_response(404, f"room {room} not seen", "not_found_error")

    async def _prefill_has(self, host: str, port: int, room: int) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        try:
            async with self._session.get(f"http://{host}:{port}/bootstrap/{room}") as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def meet(self, host: str, port: int, room: int) -> bool:
        """Wait, bounded, until the prefill at host:port has seen `room`."""
        deadline = time.monotonic() + self.wait_s
        while not await self._prefill_has(host, port, room):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True

    def gate(self, route: str, handler: Handler) -> Handler:
        """`handler` for a PD worker: refuses regular requests, records (prefill) or meets
        (decode) each room first."""

        async def gated(request: web.Request) -> web.StreamResponse:
            body = await read_json_object(request)
            halves = halves_of(body)
            if halves is None:
                self.regular_requests += 1
                raise BadRequest(
                    f"this is a {self.mode} worker: a request needs bootstrap_host, "
                    "bootstrap_port and bootstrap_room (send it through a PD router)"
                )
            for host, port, room in halves:
                if self.mode == "prefill":
                    self.remember(room, route)
                    continue
                if port is None or not await self.meet(host, port, room):
                    return error_response(
                        500,
                        f"the prefill half of bootstrap_room {room} never arrived at "
                        f"{host}:{port} within {self.wait_s:g}s",
                        "server_error",
                        code="pd_prefill_missing",
                    )
                self.remember(room, route)
            return await handler(request)

        return gated


def halves_of(body: dict[str, Any]) -> list[tuple[str, int | None, int]] | None:
    """(host, port, room) per prompt, or None when the bootstrap fields are missing."""
    if any(body.get(name) is None for name in ("bootstrap_host", "bootstrap_room")):
        return None
    values = [body.get(name) for name in FIELDS]
    if all(isinstance(v, list) for v in values):
        halves = [(str(h), _int(p), _int(r)) for h, p, r in zip(*values, strict=False)]
    else:
        halves = [(str(values[0]), _int(values[1]), _int(values[2]))]
    if any(room is None for _, _, room in halves):
        raise BadRequest("bootstrap_room must be an integer", "bootstrap_room")
    return [(host, port, room) for host, port, room in halves if room is not None]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def bootstrap_app(rooms: PdRooms) -> web.Application:
    """The prefill's bootstrap server: `GET /bootstrap/{room}` only."""
    app = web.Application()
    app.add_routes([web.get("/bootstrap/{room}", rooms.bootstrap)])
    return app


async def serve_bootstrap(rooms: PdRooms, host: str, port: int) -> web.AppRunner:
    """The bootstrap server listening on host:port (the HTTP and the gRPC simulators'
    prefill); OSError when it cannot listen."""
    runner = web.AppRunner(bootstrap_app(rooms), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
