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


def lends_quota_shares(process_count: int, redis: bool) -> bool:
    """Does a node lend and borrow quota shares? Not one of several processes without
    Redis: its control process sees none of its data-plane processes' demand, so it would
    lend shares they are using (docs/quotas.md). Its report then wants and grants nothing."""
    return redis or process_count <= 1


def share_quotas(poller: PeerPoller, quotas: QuotaEngine) -> None:
    """Exchange quota shares after every round of polls (every member asked once)."""
    poller.on_polled.append(lambda: quotas.exchange(peer_parts(poller.views)))
