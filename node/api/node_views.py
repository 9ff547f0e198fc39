"""Every node's view of one replicated object that each node prepares on its own (a
tokenizer, a WASM module): this node's own, its peers' from their last /ha/local report."""

from __future__ import annotations

from typing import Any

from node.app import Node


def node_views(
    node: Node, report_key: str, object_id: str, own: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    views = {node.name: own}
    for name, peer in sorted(node.peers.views.items()):
        if not peer.reachable:
            views[name] = {"state": "unknown", "reason": peer.error or "not polled yet"}
            continue
        seen = (peer.report.get(report_key) or {}).get(object_id)
        views[name] = seen or {"state": "pending", "reason": "not seen yet", "updated_at": None}
    return views


def summary(views: dict[str, dict[str, Any]]) -> str:
    """ready on every node, failed on any, else pending."""
    states = {view["state"] for view in views.values()}
    if states == {"ready"}:
        return "ready"
    return "failed" if "failed" in states else "pending"
