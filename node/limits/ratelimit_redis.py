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

Redis health is the node's `HotStore`'s: every call is bounded by its one
timeout, a failure marks the store unhealthy, and its probe reloads the
script once a second until Redis answers. While unhealthy, `RateLimiter`
decides locally without trying Redis at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from node.limits.hot_store import HotStore

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


class RedisBuckets:
    """Token buckets held in Redis, shared by every node that uses the same server."""

    def __init__(self, store: HotStore) -> None:
        self.store = store
        store.register({SCRIPT_SHA: TOKEN_BUCKETS_LUA})

    async def take(
        self, keys: Sequence[str], args: Sequence[str]
    ) -> tuple[bool, list[float]] | None:
        """Take one token from every bucket in `keys`, or from none of them.

        `args` holds rate and burst for each key, as strings. Returns whether the
        tokens were taken and, when not, each bucket's wait in seconds; None when
        Redis failed or timed out (the store is then unhealthy).
        """
        reply = await self.store.run_script(SCRIPT_SHA, keys, args)
        if reply is None:
            return None
        if int(reply[0]) == 1:
            return True, []
        return False, [float(w) for w in reply[1:]]
