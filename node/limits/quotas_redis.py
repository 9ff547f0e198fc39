"""The Redis side of quotas: two Lua scripts, one round trip per admit and per release.

Why scripts: a request is checked against every subject that applies to it (its
key, its tenant, its model) and must consume from all of them or from none.
Checking and counting inside one `EVALSHA` makes that atomic across every
gateway node without locks, for exactly one round trip. The scripts read Redis
`TIME`, so all nodes share one clock and node clock skew cannot reopen a window.

Per subject there are two keys (see docs/quotas.md):

* `<prefix>n:<kind>:<id>`, a hash of sliding windows, one per limit the subject
  has: `b` (burst, 1 s in slots of 0.1 s), `m` (a minute in 1 s slots), `h`
  (an hour in 1 min slots) and `t` (the hour's tokens). Each is the ring of
  `windows.SlidingCount` packed with msgpack: the newest slot's number, then the
  count of each slot. Slots that left the window read as 0, so windows slide
  without a write of their own. TTL: 1 h + 120 s.
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
from typing import TYPE_CHECKING, Any

from node.limits.hot_store import HotStore

if TYPE_CHECKING:
    from redis.asyncio.client import Pipeline
from node.limits.windows import QUOTA_WINDOWS

MAX_DEFERRED = 10_000  # releases kept for later while Redis is down (oldest dropped)
FLUSH_BATCH = 500  # deferred releases sent per pipelined round trip

# The sliding windows of `windows.SlidingCount`, one ring per limit in the subject's hash:
# field -> a msgpack array {newest slot number, count of each slot (index = slot % size)}.
RINGS_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- a window of `span` seconds in `size - 1` slots; times `size - 1` before dividing by
-- `span`, as windows.SlidingCount does, so both agree on the slot of an instant
local function slot_of(t, span, size) return math.floor(t * (size - 1) / span) end
local function start_of(slot, span, size) return slot * span / (size - 1) end
local function ring(packed, span, size)
  local slot = slot_of(now, span, size)
  local r = packed and cmsgpack.unpack(packed)
  if not r then
    r = {slot}
    for i = 1, size do r[i + 1] = 0 end
    return r, 0
  end
  local head = r[1]
  if slot > head then
    for s = head + 1, head + math.min(slot - head, size) do r[s % size + 2] = 0 end
    r[1] = slot
  end
  local total = 0
  for i = 2, size + 1 do total = total + r[i] end
  return r, total
end
local function wait_below(r, total, limit, span, size)
  if total < limit then return 0 end
  local left, head = total, r[1]
  for s = head - size + 1, head do
    left = left - r[s % size + 2]
    if left < limit then return math.max(0, start_of(s + size, span, size) - now) end
  end
  return math.max(0, start_of(head + size, span, size) - now)
end
"""

# KEYS[2i-1], KEYS[2i]: counters hash and in-flight set of subject i
# ARGV[1]: lease id; ARGV[2]: lease lifetime in seconds
# ARGV[3+5(i-1)] .. ARGV[7+5(i-1)]: burst, per minute, per hour, tokens per hour and
#   max concurrent of subject i ("0": no limit)
# Returns {allowed, then per subject: headline count, headline reset, refusal code, wait};
# the headline window is per minute if limited, else per hour; its count is from before
# this request and its reset is the seconds until its oldest counted request leaves it;
# code 0 = admits, 1 burst, 2 per minute, 3 per hour, 4 tokens per hour, 5 max concurrent;
# wait = seconds until that check could pass.
ADMIT_LUA = (
    RINGS_LUA
    + """
local SPECS = {SPECS}
local ttl = tonumber(ARGV[2])
local n = #KEYS / 2
local reply = {1}
local changed = {}
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local maxc = tonumber(ARGV[a + 4])
  local packed = redis.call('HMGET', KEYS[2 * i - 1], 'b', 'm', 'h', 't')
  local code, wait, hcount, hreset = 0, 0, 0, 0
  local head = (tonumber(ARGV[a + 1]) > 0) and 2 or 3
  changed[i] = {}
  for j, spec in ipairs(SPECS) do
    local limit = tonumber(ARGV[a + j - 1])
    if limit > 0 then
      local r, total = ring(packed[j], spec[2], spec[3])
      local w = wait_below(r, total, limit, spec[2], spec[3])
      if total >= limit and w >= wait then code, wait = j, w end
      if j == head then
        hcount = total
        hreset = total > 0 and wait_below(r, total, total, spec[2], spec[3]) or spec[2]
      end
      if j < 4 then changed[i][spec[1]] = r end
    end
  end
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    if redis.call('ZCARD', KEYS[2 * i]) >= maxc and wait < 1 then code, wait = 5, 1 end
  end
  if code > 0 then reply[1] = 0 end
  local at = 2 + 4 * (i - 1)
  reply[at], reply[at + 1] = hcount, string.format('%.6f', hreset)
  reply[at + 2], reply[at + 3] = code, string.format('%.6f', wait)
end
if reply[1] == 1 then
  for i = 1, n do
    for field, r in pairs(changed[i]) do
      local size = #r - 1
      r[r[1] % size + 2] = r[r[1] % size + 2] + 1
      redis.call('HSET', KEYS[2 * i - 1], field, cmsgpack.pack(r))
    end
    if next(changed[i]) then redis.call('PEXPIRE', KEYS[2 * i - 1], 3720000) end
    if tonumber(ARGV[7 + 5 * (i - 1)]) > 0 then
      redis.call('ZADD', KEYS[2 * i], string.format('%.6f', now + ttl), ARGV[1])
      redis.call('PEXPIRE', KEYS[2 * i], math.ceil((ttl + 60) * 1000))
    end
  end
end
return reply
"""
)

# KEYS[1 .. ARGV[2]]: in-flight sets to take the lease out of; the other KEYS: counters
# hashes whose token window ARGV[3] tokens are added to, now (Redis TIME). ARGV[1]: lease id.
RELEASE_LUA = (
    RINGS_LUA
    + """
local nz, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nz do redis.call('ZREM', KEYS[i], ARGV[1]) end
if tokens > 0 then
  for i = nz + 1, #KEYS do
    local r = ring(redis.call('HGET', KEYS[i], 't'), {TOKENS})
    local at = r[1] % (#r - 1) + 2
    r[at] = r[at] + tokens
    redis.call('HSET', KEYS[i], 't', cmsgpack.pack(r))
    redis.call('PEXPIRE', KEYS[i], 3720000)
  end
end
return 1
"""
)

# Each window's field in the subject's hash, its seconds and its ring size (slots + 1),
# in the order of the limits in ARGV: burst, per minute, per hour, tokens per hour.
_SHAPES = zip("bmht", QUOTA_WINDOWS.values(), strict=True)
_RINGS = [(field, span, slots + 1) for field, (span, slots) in _SHAPES]
ADMIT_LUA = ADMIT_LUA.replace(
    "{SPECS}", "{" + ", ".join(f"{{'{f}', {span:g}, {size}}}" for f, span, size in _RINGS) + "}"
)
RELEASE_LUA = RELEASE_LUA.replace("{TOKENS}", f"{_RINGS[3][1]:g}, {_RINGS[3][2]}")

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
