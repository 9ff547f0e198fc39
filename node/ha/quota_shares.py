"""Hands each round of peer polls to the quota engine, which lends and borrows shares.

The engine (node/limits/shares.py) needs, for every other member, the quota part
of its last `/ha/local` report and when the poll that fetched it was sent (a
grant's lease runs from then), or None when the peer did not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ha.peers import PeerPoller, PeerView
from node.limits.quotas import QuotaEngine

PeerParts = dict[str, tuple[float, Mapping[str, Any]] | None]


def peer_parts(views: Mapping[str, PeerView]) -> PeerParts:
    parts: PeerParts = {}
    for name, view in views.items():
        part = view.report.get("quota_shares") if view.reachable else None
        parts[name] = (view.sent_at, part) if isinstance(part, dict) else None
    return parts


def lends_quota_shares(process_count: int) -> bool:
    """Does a node's QuotaEngine itself lend and borrow quota shares over the peer poll?
    A node of one process, yes. A node of several: its control process does for it,
    with its data-plane processes' demand (node/plane/node_shares.py)."""
    return process_count <= 1


def share_quotas(poller: PeerPoller, quotas: QuotaEngine) -> None:
    """Exchange quota shares after every round of polls (every member asked once)."""
    poller.on_polled.append(lambda: quotas.exchange(peer_parts(poller.views)))
