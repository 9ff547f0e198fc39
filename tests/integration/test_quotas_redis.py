"""Integration tests of quotas in Redis mode against a real redis-server.

Each test starts its own `redis-server` on a free loopback port (no persistence)
and stops it at teardown. Several `QuotaEngine` instances in one event loop
stand in for gateway nodes: same Redis, different node names. Windows slide on
Redis `TIME`: there is no minute boundary for a test to wait out.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Coroutine
from typing import Any

import redis

from node.limits.hot_store import HotStore
from node.limits.quotas import Limits, QuotaDecision, QuotaEngine, Subject
from tests.support import RedisServer, free_port

# Commands the quota scripts run inside EVALSHA; commandstats counts them too.
SCRIPT_INTERNAL = {
    "cmdstat_time",
    "cmdstat_hmget",
    "cmdstat_hget",
    "cmdstat_hset",
    "cmdstat_hincrby",
    "cmdstat_pexpire",
    "cmdstat_zremrangebyscore",
    "cmdstat_zcard",
    "cmdstat_zadd",
    "cmdstat_zrem",
}


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def client_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command sent by clients (not run by scripts) since the last reset."""
    return {
        name: int(v["calls"])
        for name, v in client.info("commandstats").items()
        if name not in SCRIPT_INTERNAL and not name.startswith(("cmdstat_config", "cmdstat_info"))
    }


def ring_total(client: redis.Redis, key: str, field: str) -> int:
    """The count of one sliding window in a subject's hash (a msgpack ring, see quotas_redis)."""
    script = """
    local packed = redis.call('HGET', KEYS[1], ARGV[1])
    if not packed then return 0 end
    local r, total = cmsgpack.unpack(packed), 0
    for i = 2, #r do total = total + r[i] end
    return total
    """
    return int(client.eval(script, 1, key, field))


async def started(name: str, server_url: str, redis_timeout: float = 2.0) -> QuotaEngine:
    # A healthy Redis must not look down on a loaded 2-core CI machine: tests of exact
    # shared counting give it time; tests of outages pass the short timeout they measure.
    store = HotStore(server_url, timeout=redis_timeout)  # one node's store
    engine = QuotaEngine(name, store, lambda: 3)
    await store.start()
    return engine


async def until_redis(engine: QuotaEngine, subject: Subject, timeout: float = 5.0) -> None:
    """Keep serving requests until the engine is back on Redis (deadline `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while engine.backend != "redis":
        assert loop.time() < deadline, f"still {engine.backend!r} after {timeout}s"
        d = await engine.admit([subject])
        if d.lease is not None:
            await d.lease.release(0)
        await asyncio.sleep(0.05)  # poll interval: recovery runs in the background


async def timed_admit(engine: QuotaEngine, subjects: list[Subject]) -> tuple[QuotaDecision, float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    decision = await engine.admit(subjects)
    return decision, loop.time() - t0


def test_three_nodes_share_a_per_minute_limit_exactly(redis_server: RedisServer) -> None:
    limit = 30
    subjects = [
        Subject("key", "k1", Limits(requests_per_minute=limit)),
        Subject("tenant", "t1", Limits(requests_per_minute=1000, requests_per_hour=5000)),
    ]

    async def main() -> None:
        nodes = [await started(f"node-{i}", redis_server.url) for i in range(3)]
        try:
            assert [n.backend for n in nodes] == ["redis"] * 3
            rounds = [await asyncio.gather(*(n.admit(subjects) for n in nodes)) for _ in range(40)]
            with redis_server.client() as client:
                ttl_ms = client.pttl("meshgate:q:n:key:k1")
                tenant_minute = ring_total(client, "meshgate:q:n:tenant:t1", "m")
        finally:
            for n in nodes:
                await n.store.close()
        decisions: list[QuotaDecision] = [d for r in rounds for d in r]
        admitted = [d for d in decisions if d.allowed]
        per_node = [sum(r[i].allowed for r in rounds) for i in range(3)]
        assert len(admitted) == limit  # not limit + N - 1: the count is shared
        assert all(count > 0 for count in per_node), per_node
        # every admitted request saw a distinct count: X-RateLimit-Remaining from 29 down to 0
        assert sorted(d.remaining for d in admitted) == list(range(limit))
        assert {d.limit for d in decisions} == {limit}
        refused = [d for d in decisions if not d.allowed]
        assert {d.refused_by for d in refused} == {"key:k1 requests_per_minute"}
        # the minute slides in 1 s slots: a request leaves it 60 to 61 s after it came
        assert all(d.remaining == 0 and 59 < d.retry_after <= 61 for d in refused)
        assert all(59 < d.reset <= 61 for d in decisions)
        assert tenant_minute == limit  # refusals took nothing from the tenant
        assert 3_660_000 < ttl_ms <= 3_720_000

    run(main())


def test_one_round_trip_per_admit_and_per_release(redis_server: RedisServer) -> None:
    subjects = [
        Subject("key", "k1", Limits(requests_per_minute=1000, burst=1000, max_concurrent=100)),
        Subject("tenant", "t1", Limits(requests_per_hour=1000, tokens_per_hour=10**9)),
        Subject("model", "m1", Limits(requests_per_minute=1000)),
    ]
    count_only = [Subject("model", "m1", Limits(requests_per_minute=1000))]

    async def main() -> None:
        engine = await started("node-1", redis_server.url)
        stats = redis_server.client()  # connected before the reset, so it adds only INFO
        try:
            stats.config_resetstat()
            decisions = [await engine.admit(subjects) for _ in range(50)]
            assert all(d.allowed for d in decisions)
            assert client_calls(stats) == {"cmdstat_evalsha": 50}
            assert stats.zcard("meshgate:q:c:key:k1") == 50
            for d in decisions:
                assert d.lease is not None
                await d.lease.release(7)
            assert client_calls(stats) == {"cmdstat_evalsha": 100}
            assert stats.zcard("meshgate:q:c:key:k1") == 0
            assert ring_total(stats, "meshgate:q:n:tenant:t1", "t") == 350
            assert not stats.exists("meshgate:q:c:key:k1")  # gone: the set emptied
            stats.config_resetstat()

            # a lease with nothing to free or charge costs no round trip at release
            d = await engine.admit(count_only)
            assert d.lease is not None
            await d.lease.release(100)
            assert client_calls(stats) == {"cmdstat_evalsha": 1}

            # a server that lost its scripts (NOSCRIPT) is answered by EVAL in the same call
            stats.script_flush()
            stats.config_resetstat()
            assert (await engine.admit(subjects)).allowed
            assert client_calls(stats) == {"cmdstat_evalsha": 1, "cmdstat_eval": 1}
            assert engine.backend == "redis"
        finally:
            stats.close()
            await engine.store.close()

    run(main())


def test_release_is_seen_by_other_nodes(redis_server: RedisServer) -> None:
    tokens = Subject("tenant", "t1", Limits(tokens_per_hour=100))
    slots = Subject("key", "k1", Limits(max_concurrent=2))

    async def main() -> None:
        a, b = await started("node-a", redis_server.url), await started("node-b", redis_server.url)
        try:
            first = await a.admit([tokens])
            assert first.lease is not None
            await first.lease.release(150)
            refused = await b.admit([tokens])
            assert refused.refused_by == "tenant:t1 tokens_per_hour"
            assert 3600 < refused.retry_after <= 3660  # the hour slides in 1-minute slots
            assert b.usage("tenant", "t1")["tokens_hour"] == 0  # usage is per node
            assert a.usage("tenant", "t1")["tokens_hour"] == 150

            held = [await a.admit([slots]), await b.admit([slots])]
            assert all(d.allowed for d in held)
            assert (await b.admit([slots])).refused_by == "key:k1 max_concurrent"
            lease = held[0].lease
            assert lease is not None
            await lease.release(0)
            await lease.release(0)  # idempotent
            assert (await b.admit([slots])).allowed
            assert not (await a.admit([slots])).allowed
        finally:
            await a.store.close()
            await b.store.close()

    run(main())


def test_killed_redis_falls_back_to_local_shares_and_recovers(redis_server: RedisServer) -> None:
    k = Subject("key", "k1", Limits(requests_per_minute=30))

    async def main() -> None:
        engine = await started("node-1", redis_server.url, redis_timeout=0.25)
        try:
            first = await engine.admit([k])
            assert first.allowed and engine.backend == "redis"
            redis_server.kill()
            timed = [await timed_admit(engine, [k]) for _ in range(20)]
            assert max(t for _, t in timed) < 0.25 + 0.1
            admitted = sum(d.allowed for d, _ in timed)
            assert admitted == 9  # local share ceil(30 / 3) = 10, one used through Redis
            assert engine.backend.startswith("local (redis unreachable: ")

            redis_server.start()  # same port, empty
            await until_redis(engine, k)
            with redis_server.client() as stats:
                before = client_calls(stats).get("cmdstat_evalsha", 0)
                assert (await engine.admit([k])).allowed  # Redis counts afresh
                assert client_calls(stats).get("cmdstat_evalsha", 0) == before + 1
        finally:
            await engine.store.close()

    run(main())


def test_release_during_outage_is_sent_when_redis_returns(redis_server: RedisServer) -> None:
    slots = Subject("key", "k1", Limits(max_concurrent=1))
    probe = Subject("model", "probe", Limits(burst=1000))
    zkey = "meshgate:q:c:key:k1"

    async def main() -> None:
        a = await started("node-a", redis_server.url, redis_timeout=0.2)
        b = await started("node-b", redis_server.url, redis_timeout=0.2)
        try:
            held = await a.admit([slots])
            assert held.lease is not None
            assert (await b.admit([slots])).refused_by == "key:k1 max_concurrent"
            redis_server.signal(signal.SIGSTOP)  # hung, not dead: calls time out
            _, took = await timed_admit(a, [probe])
            assert took < 0.2 + 0.15
            assert "TimeoutError" in a.backend
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await held.lease.release(0)  # Redis is down: kept for later, no waiting
            assert loop.time() - t0 < 0.05
            redis_server.signal(signal.SIGCONT)
            with redis_server.client() as client:
                assert client.zcard(zkey) == 1  # still held: a's probe is ~1 s away
                await until_redis(a, probe)
                assert client.zcard(zkey) == 0  # sent on recovery, not left to expire
            assert (await b.admit([slots])).allowed
        finally:
            await a.store.close()
            await b.store.close()

    run(main())


def test_unreachable_at_start_does_not_raise_and_enforces_locally() -> None:
    async def main() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        t0 = time.monotonic()
        engine = await started("node-1", url)
        try:
            assert time.monotonic() - t0 < 1.0
            assert engine.backend.startswith("local (redis unreachable: ")
            k = Subject("key", "k1", Limits(requests_per_hour=12))
            assert sum([(await engine.admit([k])).allowed for _ in range(10)]) == 4
        finally:
            await engine.store.close()

    run(main())


def test_a_burst_across_a_second_edge_is_refused(redis_server: RedisServer) -> None:
    """The Redis windows slide too (here the 1 s `burst` window, in 0.1 s slots): three
    requests late in one second of Redis `TIME` and a fourth early in the next is one
    too many for any 1 s interval, though a fixed window would have admitted it."""
    burst = Subject("key", "k1", Limits(burst=3))

    async def main() -> None:
        a, b = await started("node-a", redis_server.url), await started("node-b", redis_server.url)
        try:
            with redis_server.client() as client:
                _, micros = client.time()
                await asyncio.sleep((1.7 - micros / 1e6) % 1.0)  # to about .7 of a second
                early = [await n.admit([burst]) for n in (a, b, a)]
                await asyncio.sleep(0.45)  # to about .15 of the next second
                _, later_micros = client.time()
            assert all(d.allowed for d in early)
            assert later_micros < 600_000, later_micros  # the edge was crossed
            refused = await b.admit([burst])
            assert refused.refused_by == "key:k1 burst"
            assert 0 < refused.retry_after <= 0.7  # until the first leaves, 1 to 1.1 s on
        finally:
            await a.store.close()
            await b.store.close()

    run(main())
