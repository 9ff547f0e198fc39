"""Until a node has loaded its replicated state, requests wait for it rather than meet an
empty replica.

An empty replica cannot tell "no credential has ever guarded this mesh" from "the
journal has not been replayed yet", and would take every caller for the admin of
an open loopback node (`node.auth`, `open_door`). A node whose own configuration
holds a credential never opens anyway; one that relies on the replicated state
(managed keys, the recorded "authentication required") makes requests wait here,
briefly, until it has a state to serve from (`node.loaded_state`: caught up in
this run, or a replayed journal of a run that had caught up). Probes never wait:
they must answer while the node starts.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from node.app import NODE

PROBES: Final = frozenset({"/liveness", "/readiness", "/health", "/health/ready", "/metrics"})
WAIT_SECS: Final = 10.0
POLL_SECS: Final = 0.05


@web.middleware
async def load_gate(request: web.Request, handler: Any) -> web.StreamResponse:
    node = request.app[NODE]
    # Loaded is the common case: checked first, it spares every request the rest.
    if not node.auth.static and not node.loaded.loaded() and request.path not in PROBES:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECS
        # If it is still not loaded at the deadline, authentication answers 503.
        while not node.loaded.loaded() and loop.time() < deadline:
            await asyncio.sleep(POLL_SECS)
    return await handler(request)  # type: ignore[no-any-return]
