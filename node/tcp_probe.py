"""Does anything accept a TCP connection at an address? Asked within a bounded time.

Used where nothing more can be asked: a gRPC worker's port (discovery and
health checks), and the Raft port of a node about to be added as a voter,
whose traffic is encrypted with the mesh secret. Failures are told as fixed
phrases (`node.proxy.failures`); the OS's text goes to the debug log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from node.proxy.failures import kind_of

log = logging.getLogger(__name__)


async def tcp_connects(host: str, port: int, timeout: float) -> str | None:
    """None once a connection opened (it is closed at once), else why it did not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        log.debug("tcp probe of %s:%s: %s: %s", host, port, type(exc).__name__, exc)
        return kind_of(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def tcp_probe(url: str, timeout: float) -> tuple[bool, str | None]:
    """(passed, error) for the host and port of a worker URL."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme in ("https", "grpcs") else 80
    problem = await tcp_connects(parts.hostname or "", parts.port or default_port, timeout)
    return problem is None, None if problem is None else f"cannot connect: {problem}"
