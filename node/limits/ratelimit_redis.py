"""The Redis side of the rate limiter: one Lua script, one round trip per request.

Why a script: a request may be subject to two rules (the global `*` rule and
its model's rule) and must take a token from both or from neither. Doing the
check and the update inside one `EVALSHA` makes that atomic across every
gateway node without locks, and costs exactly one round trip. The script reads
the time with Redis `TIME`, so the nodes share one clock and their own clock
skew cannot mint tokens.

Each bucket is a hash `{tk: tokens, ts: seconds}` that expires after twice the
time it takes to refill (at least 1 s): by then it would be full anyway, so an
expired key reads as a full bucket and idle scopes leave nothing behind.

`RedisBackend` also owns Redis health: every call is bounded by one timeout
(the client's own retries are disabled, so a dead server fails fast instead of
being retried behind the caller's back); a failure marks the backend unhealthy,
and a background task reloads the script once a second until Redis answers.
While unhealthy, `RateLimiter` decides locally without trying Redis at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0  # seconds between attempts to reach Redis again

# KEYS[i]   the bucket of scope i
# ARGV[2i-1], ARGV[2i]   rate (tokens per second) and burst (capacity) of scope i
# Returns {1} after taking one token from every bucket, or, when any bucket lacks
# a token, {0, wait_1, ..., wait_n} without touching anything: wait_i is how many
# seconds bucket i needs to hold one token ("0" if it has one now).
TOKEN_BUCKETS_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens, stamps, waits = {}, {}, {}
local allowed = 1
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tk', 'ts')
  local tk, ts = tonumber(state[1]), tonumber(state[2])
  if tk == nil or ts == nil then
    tk, ts = burst, now
  elseif now > ts then
    tk, ts = tk + (now - ts) * rate, now
  end
  if tk > burst then tk = burst end
  tokens[i], stamps[i] = tk, ts
  if tk < 1 - 1e-9 then
    allowed = 0
    waits[i] = string.format('%.17g', (1 - tk) / rate)
  else
    waits[i] = '0'
  end
end
if allowed == 0 then
  return {0, unpack(waits)}
end
for i = 1, #KEYS do
  local ttl = math.ceil(2000 * tonumber(ARGV[2 * i]) / tonumber(ARGV[2 * i - 1]))
  redis.call('HSET', KEYS[i], 'tk', string.format('%.17g', tokens[i] - 1),
             'ts', string.format('%.17g', stamps[i]))
  redis.call('PEXPIRE', KEYS[i], math.max(1000, ttl))
end
return {1}
"""

SCRIPT_SHA = hashlib.sha1(TOKEN_BUCKETS_LUA.encode()).hexdigest()


class RedisBackend:
    """Token buckets held in Redis, shared by every node that uses the same server."""

    def __init__(self, url: str, timeout: float) -> None:
        # Raises ValueError on a malformed URL; connects lazily on first use. Every call
        # is bounded by `asyncio.timeout` below, which also covers connecting and the
        # NOSCRIPT fallback, so no per-socket-operation timeout is needed.
        self._client: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._timeout = timeout
        self.healthy = False
        self.reason = "not started"
        self._closed = False
        self._recovery: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the script; if Redis is down, stay unhealthy and keep retrying in background."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._load()
        except Exception as exc:
            self._down(exc)
        else:
            self.healthy = True
            log.info("rate limits: counters in redis")

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

    async def take(
        self, keys: Sequence[str], args: Sequence[str]
    ) -> tuple[bool, list[float]] | None:
        """Take one token from every bucket in `keys`, or from none of them.

        `args` holds rate and burst for each key, as strings. Returns whether the
        tokens were taken and, when not, each bucket's wait in seconds; None when
        Redis failed or timed out (the backend is then unhealthy).
        """
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._eval(keys, args)
        except Exception as exc:  # any failure: the caller decides locally
            self._down(exc)
            return None
        if int(reply[0]) == 1:
            return True, []
        return False, [float(w) for w in reply[1:]]

    async def _eval(self, keys: Sequence[str], args: Sequence[str]) -> list[bytes | int]:
        try:
            return await self._client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:  # the server restarted or flushed its scripts
            return await self._client.eval(TOKEN_BUCKETS_LUA, len(keys), *keys, *args)

    async def _load(self) -> None:
        sha = await self._client.script_load(TOKEN_BUCKETS_LUA)
        if _text(sha) != SCRIPT_SHA:
            raise RuntimeError(f"redis returned script sha {sha!r}, expected {SCRIPT_SHA}")

    def _down(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.reason = _describe(exc)
        if self.healthy or self._recovery is None:
            log.warning("rate limits: redis unreachable (%s); enforcing local shares", self.reason)
        self.healthy = False
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Reload the script once per RETRY_INTERVAL until Redis answers."""
        while True:
            await asyncio.sleep(RETRY_INTERVAL)
            try:
                async with asyncio.timeout(self._timeout):
                    await self._load()
            except Exception as exc:
                self.reason = _describe(exc)
                continue
            self.healthy = True
            log.info("rate limits: redis reachable again; counters in redis")
            return


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
