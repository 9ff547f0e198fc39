"""The hot store's recovery probe: Redis counts as healthy only if nothing failed meanwhile.

The probe reloads the scripts, then runs the users' recovery hooks (quotas send
the releases they held back). A call that fails during those hooks must leave
the store unhealthy, with the probe still running, or the next request would
wait out a whole timeout on a Redis that is down.
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.limits.hot_store import HotStore
from node.service import DONE


class FakeRedis:
    """Answers SCRIPT LOAD with the sha the store expects."""

    def __init__(self, store: HotStore) -> None:
        self.store = store

    async def script_load(self, source: str) -> str:
        return next(sha for sha, text in self.store._scripts.items() if text == source)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def store_with(hook: Any) -> HotStore:
    store = HotStore("redis://127.0.0.1:1/0", timeout=0.5)
    store._client = FakeRedis(store)  # type: ignore[assignment]
    store.register({"abc": "return 1"}, on_recovered=hook)
    return store


def test_a_failure_during_the_recovery_hooks_keeps_the_store_down() -> None:
    async def run() -> tuple[object, bool]:
        async def hook() -> None:
            store.down(ConnectionError("dropped again"))  # a user's call failed meanwhile

        store = store_with(hook)
        result = await store._reconnect()
        healthy = store.healthy
        await store._probe.stop()
        return result, healthy

    result, healthy = asyncio.run(run())
    assert result is not DONE  # the probe goes on
    assert healthy is False


def test_a_quiet_recovery_makes_the_store_healthy() -> None:
    async def run() -> tuple[object, bool]:
        async def hook() -> None:
            pass

        store = store_with(hook)
        return await store._reconnect(), store.healthy

    result, healthy = asyncio.run(run())
    assert result is DONE and healthy is True
