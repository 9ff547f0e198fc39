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
