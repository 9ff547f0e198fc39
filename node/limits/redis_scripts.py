"""A Redis connection that runs Lua scripts for shared counters, and survives outages.

Both the rate limiter and the quota engine keep their counters in Redis when
`--redis-url` is set. They share the same needs, which live here once: each
call bounded by one timeout (connecting and the NOSCRIPT fallback included);
the first failure marks the connection unhealthy (callers then decide from
local shares); a background task probes once a second by loading the scripts
again and, when Redis answers, marks it healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0  # seconds between probes while Redis is unreachable


class ScriptedRedis:
    label = "redis"  # names the user in logs ("rate limits", "quotas")

    def __init__(self, url: str, timeout: float, scripts: dict[str, str]) -> None:
        # Raises ValueError on a malformed URL; connects lazily. `asyncio.timeout`
        # bounds every call, so no per-socket-operation timeout is needed.
        self._client: Redis = Redis.from_url(
            url, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._timeout = timeout
        self._scripts = scripts  # sha -> source
        self.healthy = False
        self.reason = "not started"
        self._closed = False
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the scripts; if Redis is down, stay unhealthy and keep probing."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._load()
        except Exception as exc:
            self._down(exc)
        else:
            self.healthy = True
            log.info("%s: counters in redis", self.label)

    async def close(self) -> None:
        self._closed = True
        self.healthy = False
        self.reason = "closed"
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
            self._recovery = None
        await self._client.aclose()

    async def _call(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run a script; None when Redis failed or timed out (the link is then unhealthy)."""
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._client.evalsha(sha, len(keys), *keys, *args)
                except NoScriptError:  # the server restarted or flushed its scripts
                    source = self._scripts[sha]
                    return await self._client.eval(source, len(keys), *keys, *args)
        except Exception as exc:  # any failure: the caller decides locally
            self._down(exc)
            return None

    async def _load(self) -> None:
        for sha, source in self._scripts.items():
            loaded = await self._client.script_load(source)
            if _text(loaded) != sha:
                raise RuntimeError(f"redis returned script sha {loaded!r}, expected {sha}")

    async def _recovered(self) -> None:
        """Runs after a successful probe, before the link is marked healthy again."""

    def _down(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.reason = describe(exc)
        if self.healthy or self._recovery is None:
            log.warning(
                "%s: redis unreachable (%s); enforcing local shares", self.label, self.reason
            )
        self.healthy = False
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(RETRY_INTERVAL)
            try:
                async with asyncio.timeout(self._timeout):
                    await self._load()
                await self._recovered()
            except Exception as exc:
                self.reason = describe(exc)
                continue
            self.healthy = True
            log.info("%s: redis reachable again; counters in redis", self.label)
            return


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
