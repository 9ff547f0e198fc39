"""The listener whose connections the front reads first (node/front/protocol.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from aiohttp import web

from node.front.protocol import Front
from node.front.routes import fast_routes
from node.read_timeouts import GuardedServer


class FrontSite(web.TCPSite):
    """`web.TCPSite` with the front before aiohttp's protocol, for POSTs to `paths` with
    bodies of at most `max_body` bytes (the app's own limit)."""

    def __init__(
        self,
        runner: web.AppRunner,
        *args: Any,
        paths: Collection[str],
        max_body: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, *args, **kwargs)
        self._paths = paths
        self._max_body = max_body

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        runner = self._runner
        server = runner.server
        assert isinstance(server, GuardedServer) and isinstance(runner, web.AppRunner)
        app = runner.app
        front = Front(server, fast_routes(app, self._paths), server.timeouts, self._max_body)
        self._server = await asyncio.get_running_loop().create_server(
            front,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
