"""The Redis side of quotas: two Lua scripts, one round trip per admit and per release.

Why scripts: a request is checked against every subject that applies to it (its
key, its tenant, its model) and must consume from all of them or from none.
Checking and counting inside one `EVALSHA` makes that atomic across every
gateway node without locks, for exactly one round trip. The scripts read Redis
`TIME`, so all nodes share one clock: window boundaries are the same for every
node and node clock skew cannot reopen a window.

Per subject there are two keys (see docs/quotas.md):

* `<prefix>n:<kind>:<id>`, a hash of fixed-window counters: second (`sw`, `sn`),
  minute (`mw`, `mn`), hour (`hw`, `hn`) and the hour's tokens (`tw`, `tn`). A
  field pair holds a window number and its count; a stale window number reads
  as a count of 0, so windows roll over without a write. TTL: 1 h + 60 s.
* `<prefix>c:<kind>:<id>`, a sorted set of the leases in flight (member: lease
  id, score: the time it expires). Only subjects with `max_concurrent` have
  one. A lease that is never released (its node died) drops out when its score
  passes, so a crash cannot hold a concurrency slot forever.

Redis outages are the node's `HotStore`'s to detect, as for the rate limiter:
one timeout bounds every call, a failure marks the store unhealthy, and its
probe reloads the scripts once a second until Redis answers. `QuotaRedis` adds
one thing: releases of leases that hold Redis state and could not be sent are
kept (bounded) and sent when Redis is back, from the store's recovery hook,
before the store is marked healthy again, so a Redis blip does not leave
concurrency slots taken until their leases expire.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from node.limits.hot_store import HotStore, Pipeline

MAX_DEFERRED = 10_000  # releases kept for later while Redis is down (oldest dropped)
FLUSH_BATCH = 500  # deferred releases sent per pipelined round trip

# KEYS[2i-1], KEYS[2i]: counters hash and in-flight set of subject i
# ARGV[1]: lease id; ARGV[2]: lease lifetime in seconds
# ARGV[3+5(i-1)] .. ARGV[7+5(i-1)]: burst, per minute, per hour, tokens per hour and
#   max concurrent of subject i ("0": no limit)
# Returns {allowed, now, then per subject: minute count, hour count, refusal code, wait};
# counts are from before this request; code 0 = admits, 1 burst, 2 per minute, 3 per hour,
# 4 tokens per hour, 5 max concurrent; wait = seconds until that check could pass.
ADMIT_LUA = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local min, hour = math.floor(sec / 60), math.floor(sec / 3600)
local ttl = tonumber(ARGV[2])
local n = #KEYS / 2
local reply = {1, string.format('%.6f', now)}
local sn, mn, hn, mc = {}, {}, {}, {}
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local burst, rpm, rph = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local tph, maxc = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local v = redis.call('HMGET', KEYS[2 * i - 1], 'sw', 'sn', 'mw', 'mn', 'hw', 'hn', 'tw', 'tn')
  sn[i] = (tonumber(v[1]) == sec) and (tonumber(v[2]) or 0) or 0
  mn[i] = (tonumber(v[3]) == min) and (tonumber(v[4]) or 0) or 0
  hn[i] = (tonumber(v[5]) == hour) and (tonumber(v[6]) or 0) or 0
  local tn = (tonumber(v[7]) == hour) and (tonumber(v[8]) or 0) or 0
  mc[i] = maxc
  local code, wait = 0, 0
  if burst > 0 and sn[i] >= burst then code, wait = 1, sec + 1 - now end
  local w = (min + 1) * 60 - now
  if rpm > 0 and mn[i] >= rpm and w > wait then code, wait = 2, w end
  w = (hour + 1) * 3600 - now
  if rph > 0 and hn[i] >= rph and w > wait then code, wait = 3, w end
  if tph > 0 and tn >= tph and w > wait then code, wait = 4, w end
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    if redis.call('ZCARD', KEYS[2 * i]) >= maxc and wait < 1 then code, wait = 5, 1 end
  end
  if code > 0 then reply[1] = 0 end
  local at = 3 + 4 * (i - 1)
  reply[at], reply[at + 1], reply[at + 2] = mn[i], hn[i], code
  reply[at + 3] = string.format('%.6f', wait)
end
if reply[1] == 1 then
  for i = 1, n do
    redis.call('HSET', KEYS[2 * i - 1], 'sw', sec, 'sn', sn[i] + 1, 'mw', min, 'mn', mn[i] + 1,
               'hw', hour, 'hn', hn[i] + 1)
    redis.call('PEXPIRE', KEYS[2 * i - 1], 3660000)
    if mc[i] > 0 then
      redis.call('ZADD', KEYS[2 * i], string.format('%.6f', now + ttl), ARGV[1])
      redis.call('PEXPIRE', KEYS[2 * i], math.ceil((ttl + 60) * 1000))
    end
  end
end
return reply
"""

# KEYS[1 .. ARGV[2]]: in-flight sets to take the lease out of; the other KEYS: counters
# hashes to charge ARGV[3] tokens to, in the hour of Redis TIME. ARGV[1]: lease id.
RELEASE_LUA = """
local nz, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nz do redis.call('ZREM', KEYS[i], ARGV[1]) end
if tokens > 0 and #KEYS > nz then
  local hour = math.floor(tonumber(redis.call('TIME')[1]) / 3600)
  for i = nz + 1, #KEYS do
    if tonumber(redis.call('HGET', KEYS[i], 'tw')) == hour then
      redis.call('HINCRBY', KEYS[i], 'tn', tokens)
    else
      redis.call('HSET', KEYS[i], 'tw', hour, 'tn', tokens)
    end
    redis.call('PEXPIRE', KEYS[i], 3660000)
  end
end
return 1
"""

ADMIT_SHA = hashlib.sha1(ADMIT_LUA.encode()).hexdigest()
RELEASE_SHA = hashlib.sha1(RELEASE_LUA.encode()).hexdigest()
_SOURCES = {ADMIT_SHA: ADMIT_LUA, RELEASE_SHA: RELEASE_LUA}

Call = tuple[Sequence[str], Sequence[str]]  # keys, args of one release


class QuotaRedis:
    """Quota counters in Redis, shared by every node that uses the same server."""

    def __init__(self, store: HotStore) -> None:
        self.store = store
        self.deferred: deque[Call] = deque(maxlen=MAX_DEFERRED)
        # Releases kept while Redis was down go first, before the store is healthy again.
        store.register(_SOURCES, on_recovered=self._flush)

    async def admit(self, keys: Sequence[str], args: Sequence[str]) -> list[Any] | None:
        """Run the admit script; None when Redis failed or timed out (now unhealthy)."""
        return await self.store.run_script(ADMIT_SHA, keys, args)

    async def release(self, keys: Sequence[str], args: Sequence[str], keep: bool) -> None:
        """Run the release script now, or, with `keep`, later if Redis is down."""
        store = self.store
        if store.healthy and await store.run_script(RELEASE_SHA, keys, args) is not None:
            return
        if keep and not store.closed:
            self.deferred.append((keys, args))

    async def _flush(self) -> None:
        """Send deferred releases, a batch per round trip (requeued if a batch fails)."""
        while self.deferred:
            batch = [self.deferred.popleft() for _ in range(min(FLUSH_BATCH, len(self.deferred)))]

            def fill(pipe: Pipeline, batch: list[Call] = batch) -> None:
                for keys, args in batch:
                    pipe.evalsha(RELEASE_SHA, len(keys), *keys, *args)

            if await self.store.pipeline(fill, timeout=self.store.timeout * 4) is None:
                self.deferred.extendleft(reversed(batch))
                raise ConnectionError(f"deferred releases not sent: {self.store.reason}")
