"""Where a node keeps its hot counters: in Redis when `--redis-url` is set, else locally.

The rate limiter, the quota engine and the usage book all keep counters that
are exact across the mesh only in Redis. They share one `HotStore`, created
once per node, so there is one Redis client (one connection pool, one
timeout) and one view of whether Redis is up:

* every call is bounded by one timeout (connecting and the NOSCRIPT fallback
  included); the client's own retries are off, so a dead server fails fast
  instead of being retried behind the caller's back;
* the first failure of any user marks the store unhealthy, and every user
  then decides from its local share at once, without trying Redis;
* one background probe (a `Periodic`) loads every registered script again
  once a second; when Redis answers, each user's recovery hook runs (quotas
  send the releases they kept) and the store is marked healthy again.

Each user registers its own Lua scripts and keeps its own keys. A store made
without a URL is local: `configured` is False and no user calls it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from node.service import DONE, Periodic

if TYPE_CHECKING:  # redis is imported only by a node given --redis-url: it costs 0.2 s to load
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

__all__ = ["HotStore", "describe"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 0.25  # seconds one Redis call may take before Redis counts as down
RETRY_INTERVAL: Final = 1.0  # seconds between probes while Redis is unreachable

Recovered = Callable[[], Awaitable[None]]


def _client(url: str, timeout: float) -> Redis:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(url, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


class HotStore:
    def __init__(self, url: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        # Raises ValueError on a malformed URL; connects lazily. `asyncio.timeout`
        # bounds every call, so no per-socket-operation timeout is needed.
        self._client: Redis | None = _client(url, timeout) if url else None
        self.timeout = timeout
        self._scripts: dict[str, str] = {}  # sha -> source, of every user
        self._recovered: list[Recovered] = []
        self.healthy = False
        self.reason = "not started"
        self.closed = False
        self._probe = Periodic("redis-recovery", self._reconnect, RETRY_INTERVAL, logger=log)
        # Calls that failed: a probe calls Redis healthy only if none failed while it ran.
        self._failures = 0

    @property
    def configured(self) -> bool:
        """Is there a Redis to keep counters in (whether or not it answers now)?"""
        return self._client is not None

    @property
    def backend(self) -> str:
        """Where counters are kept now: "local", "redis" or "local (redis unreachable: ...)"."""
        if not self.configured:
            return "local"
        if self.healthy:
            return "redis"
        return f"local (redis unreachable: {self.reason})"

    def register(self, scripts: Mapping[str, str], on_recovered: Recovered | None = None) -> None:
        """Add a user's scripts (sha -> source), loaded at start and by every probe;
        `on_recovered` runs after a probe reached Redis, before it counts as healthy."""
        self._scripts.update(scripts)
        if on_recovered is not None:
            self._recovered.append(on_recovered)

    async def start(self) -> None:
        """Load the scripts; if Redis is down, stay unhealthy and keep probing."""
        if self._client is None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._load(self._client)
        except Exception as exc:
            self.down(exc)
        else:
            self.healthy = True
            log.info("hot counters in redis")

    async def close(self) -> None:
        self.closed = True
        self.healthy = False
        self.reason = "closed"
        await self._probe.stop()
        if self._client is not None:
            await self._client.aclose()

    async def run_script(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Run a registered script; None when Redis failed or timed out (now unhealthy)."""
        from redis.exceptions import NoScriptError

        client = self._client
        assert client is not None, "a local store runs no scripts"
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await client.evalsha(sha, len(keys), *keys, *args)
                except NoScriptError:  # the server restarted or flushed its scripts
                    source = self._scripts[sha]
                    return await client.eval(source, len(keys), *keys, *args)
        except Exception as exc:  # any failure: the caller decides locally
            self.down(exc)
            return None

    async def pipeline(
        self,
        fill: Callable[[Pipeline], object],
        timeout: float | None = None,
        *,
        marks_down: bool = True,
    ) -> list[Any] | None:
        """Send the commands `fill` queues in one round trip; None when Redis failed.

        `marks_down=False` for writes off the request path (usage counts): their failure
        is the caller's alone, and must not send admission (rate limits, quotas) local."""
        client = self._client
        assert client is not None, "a local store sends no commands"
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                async with client.pipeline(transaction=False) as pipe:
                    fill(pipe)
                    return await pipe.execute()
        except Exception as exc:
            if marks_down:
                self.down(exc)
            return None

    def down(self, exc: BaseException) -> None:
        """Mark Redis unreachable (users go local at once) and start the probe."""
        if self.closed:
            return
        self.reason = describe(exc)
        if self.healthy or not self._probe.running:
            log.warning("redis unreachable (%s); counters kept locally", self.reason)
        self.healthy = False
        self._failures += 1  # a probe under way must not call Redis healthy after this
        self._probe.start()

    async def _load(self, client: Redis) -> None:
        if not self._scripts:
            await client.ping()
        for sha, source in self._scripts.items():
            loaded = await client.script_load(source)
            if _text(loaded) != sha:
                raise RuntimeError(f"redis returned script sha {loaded!r}, expected {sha}")

    async def _reconnect(self) -> object:
        assert self._client is not None
        failures = self._failures
        try:
            async with asyncio.timeout(self.timeout):
                await self._load(self._client)
            for hook in self._recovered:
                await hook()
        except Exception as exc:  # still down: the next probe tries again
            self.reason = describe(exc)
            return None
        if self._failures != failures:
            return None  # a call failed while this probe ran: probe again
        self.healthy = True
        log.info("redis reachable again; hot counters in redis")
        return DONE


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
