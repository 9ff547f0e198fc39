"""The quota part of each peer's report reaches the engine after every round of polls."""

from __future__ import annotations

from node.ha.peers import PeerView
from node.ha.quota_shares import peer_parts


def view(name: str, reachable: bool, sent_at: float, report: dict) -> PeerView:
    return PeerView(name, f"http://{name}", reachable=reachable, sent_at=sent_at, report=report)


def test_peer_parts_give_each_answer_with_when_its_poll_was_sent() -> None:
    part = {"ready": True, "wants": [["key", "k1", "requests_per_minute", 10]]}
    views = {
        "n2": view("n2", True, 5.0, {"quota_shares": part}),
        "n3": view("n3", False, 4.0, {"quota_shares": part}),  # did not answer this time
        "n4": view("n4", True, 6.0, {"name": "n4"}),  # an earlier version: takes no part
    }
    assert peer_parts(views) == {"n2": (5.0, part), "n3": None, "n4": None}


def test_a_rate_limit_share_before_the_peers_are_polled_is_the_smallest() -> None:
    """A member not polled yet, or a configured voter not yet a known member, counts as
    serving: a node that has just started takes 1/3 of a rate limit in a 3-node mesh,
    not all of it; a peer polled and found down no longer counts."""
    from types import SimpleNamespace
    from typing import Any, cast

    from node.app import Node
    from node.ha.peers import PeerPoller

    poller = PeerPoller(cast(Any, None), dict, "n1", "token")

    def serving(members: list[str]) -> int:
        raft = SimpleNamespace(
            state=SimpleNamespace(members={name: {} for name in members}),
            settings=SimpleNamespace(peers=("10.0.0.2:4321", "10.0.0.3:4321")),
        )
        node = SimpleNamespace(raft=raft, name="n1", peers=poller)
        return Node.serving_nodes(node)  # type: ignore[arg-type]

    assert serving([]) == 3  # the journal not replayed yet: the configured voters
    assert serving(["n1", "n2", "n3"]) == 3  # members known, not polled yet
    poller.views["n2"] = view("n2", False, 0.0, {})
    poller.views["n2"].polled = True  # asked, and it did not answer
    assert serving(["n1", "n2", "n3"]) == 2
    poller.views["n3"] = view("n3", True, 0.0, {"ready": True, "has_healthy_worker": True})
    poller.views["n3"].polled = True
    assert serving(["n1", "n2", "n3"]) == 2
