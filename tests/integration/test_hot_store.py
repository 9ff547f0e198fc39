"""One hot store per node: the rate limiter, the quota engine and the usage book share one
Redis client and one view of whether Redis is up, against a real redis-server.

A failure seen by any user sends every user to its local behaviour at once, and the
store's one probe brings them all back when Redis answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from node.limits.hot_store import HotStore
from node.limits.quotas import Limits, QuotaEngine, Subject
from node.limits.quotas_redis import ADMIT_SHA, RELEASE_SHA
from node.limits.ratelimit import RateLimiter, Rule
from node.limits.ratelimit_redis import SCRIPT_SHA
from node.limits.usage import UsageBook
from tests.support import RedisServer


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"not {what} after {timeout}s"
        await asyncio.sleep(0.02)


async def no_commit(args: dict[str, Any], rid: str) -> None:
    raise AssertionError("nothing is flushed to the log in this test")


def test_one_admission_failure_sends_every_user_local_and_one_probe_brings_them_back(
    redis_server: RedisServer,
) -> None:
    key = Subject("key", "k1", Limits(requests_per_minute=1000))

    async def main() -> None:
        store = HotStore(redis_server.url, timeout=0.25)
        limiter = RateLimiter("node-1", store, lambda: 1)
        quotas = QuotaEngine("node-1", store, lambda: 1)
        usage = UsageBook(no_commit, store=store)
        limiter.set_rules({"*": Rule("*", 1000.0, 1000.0)})
        await store.start()
        try:
            assert (limiter.backend, quotas.backend, store.backend) == ("redis",) * 3
            assert (await limiter.admit("m")).allowed
            assert (await quotas.admit([key])).allowed
            usage.record(["key:k1"], 5)
            with redis_server.client() as client:
                await until(
                    lambda: client.hget("meshgate:usage:key:k1", "tokens_used") == b"5",
                    "counted in redis",
                )
                # the store loaded every user's scripts
                shas = (SCRIPT_SHA, ADMIT_SHA, RELEASE_SHA)
                assert client.script_exists(*shas) == [True] * 3

            redis_server.kill()
            usage.record(["key:k1"], 7)  # off the request path: kept for the log...
            await until(lambda: usage.pending("key:k1")["tokens"] == 7, "kept in memory")
            assert store.healthy  # ...and a usage write does not decide for admission
            assert (await limiter.admit("m")).allowed  # fails over Redis: local share
            await until(lambda: not store.healthy, "marked down")
            assert limiter.redis_healthy is False
            assert limiter.backend.startswith("local (redis unreachable: ")
            assert quotas.backend == limiter.backend
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert (await limiter.admit("m")).allowed  # decided locally, no Redis attempt
            assert (await quotas.admit([key])).allowed
            assert loop.time() - t0 < 0.05
            total = await usage.read("key:k1", {})
            assert "redis_unreachable" in total and total["tokens_used"] == 7

            redis_server.start()  # same port, empty
            await until(lambda: store.healthy, "back on redis")
            assert (limiter.backend, quotas.backend) == ("redis", "redis")
            usage.record(["key:k1"], 3)
            with redis_server.client() as client:
                await until(
                    lambda: client.hget("meshgate:usage:key:k1", "tokens_used") == b"3",
                    "counted in redis again",
                )
        finally:
            await store.close()
        assert store.backend == "local (redis unreachable: closed)"

    asyncio.run(main())


def test_a_store_without_url_is_local_and_its_users_never_call_it() -> None:
    async def main() -> None:
        store = HotStore(None)
        limiter = RateLimiter("node-1", store, lambda: 1)
        quotas = QuotaEngine("node-1", store, lambda: 1)
        usage = UsageBook(no_commit, store=store)
        await store.start()
        assert not store.configured and store.backend == "local"
        assert limiter.backend == quotas.backend == "local"
        assert limiter.redis_healthy is None
        limiter.set_rules({"*": Rule("*", 1.0, 1.0)})
        assert (await limiter.admit(None)).allowed
        assert not (await limiter.admit(None)).allowed
        assert (await quotas.admit([Subject("key", "k", Limits(burst=1))])).allowed
        usage.record(["key:k"], 2)
        assert usage.pending("key:k")["tokens"] == 2
        assert "redis_unreachable" not in await usage.read("key:k", {})
        await store.close()

    asyncio.run(main())
