"""`GET /ha/traffic`: requests, errors, latency and time to first token, per node and per
model, in 10 s buckets over the last minutes (the console's Traffic view draws it).

A peer's mesh token or a control-plane credential, like `/ha/local`: with `?scope=mesh`
the node asks every other member for its own summary (node/traffic/gather.py).
"""

from __future__ import annotations

import time
from typing import Any, Final

from aiohttp import web

from node.api.common import json_response, node_of
from node.api.table import Audience, Query, Route
from node.app import Node
from node.auth import Principal
from node.digits import ascii_int
from node.errors import ApiError
from node.ha.peers import MESH_TOKEN_HEADER
from node.plane.siblings import process_socket
from node.traffic.gather import node_summary, peer_summaries
from node.traffic.ring import BUCKET_SECS, MAX_MINUTES

DEFAULT_MINUTES: Final = 10
SCOPES: Final = ("node", "mesh")


def _minutes(request: web.Request) -> int:
    values = request.query.getall("minutes", [])
    if not values:
        return DEFAULT_MINUTES
    minutes = ascii_int(values[0], max_digits=2) if len(values) == 1 else None
    if minutes is None or not 1 <= minutes <= MAX_MINUTES:
        shown = ", ".join(values)[:40]
        raise ApiError(
            400,
            f"minutes must be one whole number 1..{MAX_MINUTES} in ASCII digits, not {shown!r}",
            param="minutes",
        )
    return minutes


def _scope(request: web.Request) -> str:
    values = request.query.getall("scope", [])
    if not values:
        return "node"
    if len(values) > 1 or values[0] not in SCOPES:
        shown = ", ".join(values)[:40]
        raise ApiError(400, f"scope must be node or mesh (once), not {shown!r}", param="scope")
    return values[0]


def _processes(node: Node) -> dict[str, Any]:
    """A control process's data-plane processes (they serve the inference it counts)."""
    if node.config.process_count <= 1 or node.data_plane:
        return {}
    names = [f"p{i + 1}" for i in range(node.config.process_count)]
    return {name: process_socket(node.config.data_path, name) for name in names}


async def traffic(request: web.Request, _: Principal | None) -> web.Response:
    node = node_of(request)
    minutes, scope = _minutes(request), _scope(request)
    own = await node_summary(node.metrics.traffic, _processes(node), minutes, time.time())
    answer: dict[str, Any] = {
        "bucket_secs": BUCKET_SECS,
        "minutes": minutes,
        "scope": scope,
        "nodes": {node.name: own},
    }
    if scope == "mesh":
        peers = {
            name: member["http_url"]
            for name, member in node.raft.state.members.items()
            if name != node.name and member.get("http_url")
        }
        headers = {MESH_TOKEN_HEADER: node.mesh_keys.token}
        found, missing = await peer_summaries(node.session, peers, headers, minutes)
        answer["nodes"].update(found)
        answer["missing"] = missing
    return json_response(answer)


ROUTES = (
    Route(
        "GET",
        "/ha/traffic",
        traffic,
        Audience.MESH,
        "haTraffic",
        "ha",
        "Requests, errors, latency and time to first token per node and model, in 10 s buckets",
        answers={
            200: (
                "bucket_secs, minutes, scope, nodes: {name: {at, total, models: {model: "
                "columns}}} (columns: requests, errors (5xx), rejected (the node's own 4xx), "
                "each also per second, latency_p50_ms, latency_p99_ms, ttft_p50_ms, "
                "ttft_p99_ms); with scope=mesh, missing: the nodes that did not answer"
            )
        },
        errors=(400,),
        query=(
            Query(
                "minutes",
                f"the window, 1..{MAX_MINUTES} minutes ({DEFAULT_MINUTES})",
                {"type": "integer", "minimum": 1, "maximum": MAX_MINUTES},
            ),
            Query(
                "scope",
                "node (this node's processes) or mesh (every member, asked now)",
                {"type": "string", "enum": list(SCOPES)},
            ),
        ),
    ),
)
