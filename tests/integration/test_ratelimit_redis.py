"""Integration tests of the rate limiter's Redis mode against a real redis-server.

Each test starts its own `redis-server` on a free loopback port (no persistence)
and stops it at teardown. Several `RateLimiter` instances in one event loop
stand in for gateway nodes: same Redis, different node names. Waiting is a
poll with a deadline: for readiness (`wait_for`) and, inside the event loop,
for the limiter's background reconnect.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Coroutine
from typing import Any

import redis

from node.limits.hot_store import HotStore
from node.limits.ratelimit import Decision, RateLimiter, Rule
from tests.support import RedisServer, free_port

# Commands the token-bucket script runs inside EVALSHA; commandstats counts them too.
SCRIPT_INTERNAL = {"cmdstat_time", "cmdstat_hmget", "cmdstat_hset", "cmdstat_pexpire"}


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started or its stats were reset."""
    return {name: int(v["calls"]) for name, v in client.info("commandstats").items()}


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def started(
    name: str, url: str, rules: dict[str, Rule], redis_timeout: float = 2.0
) -> RateLimiter:
    # A healthy Redis must not look down on a loaded 2-core CI machine: tests of exact
    # shared counting give it time; tests of outages pass the short timeout they measure.
    store = HotStore(url, timeout=redis_timeout)  # one node's store
    limiter = RateLimiter(name, store, lambda: 3)
    await store.start()
    limiter.set_rules(rules)
    return limiter


async def timed_admit(limiter: RateLimiter, model: str | None) -> tuple[Decision, float]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    decision = await limiter.admit(model)
    return decision, loop.time() - t0


async def until_redis(limiter: RateLimiter, timeout: float = 5.0) -> None:
    """Keep serving requests until the limiter is back on Redis (deadline `timeout`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while limiter.backend != "redis":
        assert loop.time() < deadline, f"still {limiter.backend!r} after {timeout}s"
        await limiter.admit("m")
        await asyncio.sleep(0.05)  # poll interval: recovery runs in the background
    assert limiter.redis_healthy is True


def test_three_nodes_share_one_exact_limit(redis_server: RedisServer) -> None:
    rate, burst = 50.0, 10.0

    async def main() -> None:
        rules = {"*": Rule("*", rate, burst)}
        nodes = [await started(f"node-{i}", redis_server.url, rules) for i in range(3)]
        try:
            assert [n.backend for n in nodes] == ["redis"] * 3
            loop = asyncio.get_running_loop()
            per_node, refusals = [0, 0, 0], []
            t0 = last = loop.time()
            unasked = 0.0  # tokens no one could take: stalls longer than the burst lasts
            while (now := loop.time()) - t0 < 2.0:
                unasked += max(0.0, now - last - burst / rate) * rate
                last = now
                decisions = await asyncio.gather(*(n.admit("m") for n in nodes))
                for i, d in enumerate(decisions):
                    per_node[i] += d.allowed
                    if not d.allowed:
                        refusals.append(d)
            elapsed = loop.time() - t0
            unasked += max(0.0, loop.time() - last - burst / rate) * rate
            with redis_server.client() as client:
                ttl_ms = client.pttl("meshgate:rl:*")
        finally:
            for n in nodes:
                await n.store.close()
        total = sum(per_node)
        assert total <= rate * elapsed + burst + 1
        # A loaded machine may stall the loop: what nobody asked for is not the limit's.
        assert total >= (rate * elapsed - unasked) * 0.8, (total, elapsed, unasked)
        assert all(count > 0 for count in per_node), per_node
        assert refusals and {d.scope for d in refusals} == {"*"}
        assert all(0 < d.retry_after <= 1 / rate + 1e-6 for d in refusals)
        assert 0 < ttl_ms <= 1000  # 2 x refill time (0.4 s), raised to the 1 s minimum

    run(main())


def test_admit_is_one_evalsha_and_takes_from_both_buckets_or_neither(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        rules = {"*": Rule("*", 1.0, 1000.0), "m": Rule("m", 1.0, 5.0)}
        limiter = await started("node-1", redis_server.url, rules)
        stats = redis_server.client()  # connected (HELLO) before the reset, so it adds only INFO
        try:
            stats.config_resetstat()
            decisions = [await limiter.admit("m") for _ in range(100)]
            calls = command_calls(stats)
            global_tokens = float(stats.hget("meshgate:rl:*", "tk") or 0)
            model_tokens = float(stats.hget("meshgate:rl:m", "tk") or 0)
            client_calls = {
                k: v
                for k, v in calls.items()
                if k not in SCRIPT_INTERNAL and not k.startswith(("cmdstat_config", "cmdstat_info"))
            }
            assert client_calls == {"cmdstat_evalsha": 100}
            assert calls["cmdstat_time"] == 100  # the script reads Redis' clock, once per call
            assert sum(d.allowed for d in decisions) == 5
            assert {d.scope for d in decisions if not d.allowed} == {"m"}
            # 5 admitted took from "*" too; the 95 refused by "m" took nothing from "*"
            assert 994.9 <= global_tokens <= 995.1
            assert 0 <= model_tokens < 0.5  # refusals took nothing from "m" either

            # a server that lost its scripts is answered by EVAL in the same call
            stats.script_flush()
            stats.config_resetstat()
            assert not (await limiter.admit("m")).allowed
            assert command_calls(stats).get("cmdstat_eval") == 1
            assert limiter.backend == "redis"
        finally:
            stats.close()
            await limiter.store.close()

    run(main())


def test_killed_redis_falls_back_to_local_shares_and_recovers(redis_server: RedisServer) -> None:
    async def main() -> None:
        # local share with 3 nodes: capacity 12 / 3 = 4, refill 30 / 3 per second
        limiter = await started(
            "node-1", redis_server.url, {"*": Rule("*", 30.0, 12.0)}, redis_timeout=0.25
        )
        try:
            assert (await limiter.admit("m")).allowed
            assert limiter.redis_healthy is True
            redis_server.kill()
            timed = [await timed_admit(limiter, "m") for _ in range(20)]
            assert max(t for _, t in timed) < 0.25 + 0.1
            admitted = sum(d.allowed for d, _ in timed)
            assert 4 <= admitted <= 5  # enforced locally, not waved through
            assert "unreachable" in limiter.backend
            assert limiter.backend.startswith("local (redis unreachable: ")
            assert limiter.redis_healthy is False
            assert limiter.stats()["backend"] == limiter.backend

            redis_server.start()  # same port
            await until_redis(limiter)
            with redis_server.client() as stats:
                before = command_calls(stats).get("cmdstat_evalsha", 0)
                await limiter.admit("m")
                assert command_calls(stats).get("cmdstat_evalsha", 0) == before + 1
        finally:
            await limiter.store.close()

    run(main())


def test_hung_redis_costs_at_most_the_timeout_then_decides_locally(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        limiter = await started(
            "node-1", redis_server.url, {"*": Rule("*", 30.0, 12.0)}, redis_timeout=0.2
        )
        try:
            redis_server.signal(signal.SIGSTOP)
            decision, took = await timed_admit(limiter, None)
            assert decision.allowed  # the local share starts full
            assert 0.15 < took < 0.2 + 0.15
            assert limiter.redis_healthy is False
            assert "TimeoutError" in limiter.backend
            _, took = await timed_admit(limiter, None)
            assert took < 0.05  # no further attempts on the request path
            redis_server.signal(signal.SIGCONT)
            await until_redis(limiter)
        finally:
            await limiter.store.close()

    run(main())


def test_unreachable_at_start_does_not_raise_and_enforces_locally() -> None:
    async def main() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        t0 = time.monotonic()
        limiter = await started("node-1", url, {"*": Rule("*", 30.0, 12.0)})
        try:
            assert time.monotonic() - t0 < 1.0
            assert limiter.backend.startswith("local (redis unreachable: ")
            assert limiter.redis_healthy is False
            assert sum([(await limiter.admit(None)).allowed for _ in range(10)]) in (4, 5)
        finally:
            await limiter.store.close()
        assert limiter.redis_healthy is False

    run(main())
