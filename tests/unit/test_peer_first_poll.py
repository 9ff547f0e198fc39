"""A member the peer poller has never asked is asked at once, not at the next round."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from node.ha.peers import PeerPoller


def test_a_new_member_is_polled_once_at_once() -> None:
    members = {"n1": {"http_url": "http://n1"}, "n2": {"http_url": "http://n2"}}
    asked: list[str] = []

    async def fetch(http_url: str) -> tuple[dict[str, Any] | None, str | None]:
        asked.append(http_url)
        return {"ready": True}, None

    async def run() -> PeerPoller:
        poller = PeerPoller(cast(Any, None), lambda: members, "n1", "token", interval=3600)
        poller._fetch = fetch  # type: ignore[method-assign]
        poller.poll_newcomers()
        poller.poll_newcomers()  # still in flight: not asked twice
        await asyncio.gather(*poller._first_polls)
        poller.poll_newcomers()  # asked already: the rounds take it from here
        await poller.stop()
        return poller

    poller = asyncio.run(run())
    assert asked == ["http://n2"]  # never itself
    assert poller.views["n2"].reachable and poller.views["n2"].polled
