"""Where a node's traffic summary comes from: its own ring, its data-plane processes'
(with --processes N, over their sibling sockets), and for `?scope=mesh` its peers'
summaries over the mesh's authenticated HTTP. Whatever does not answer in time is
named as missing; nothing waits longer than its bound."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from node.ha.peers import peer_json
from node.plane.siblings import RING_PATH, get
from node.proxy.upstream import Upstream
from node.traffic.ring import TrafficRing
from node.traffic.summary import merge, series

PROCESS_SECS: Final = 2.0  # each data-plane process's ring
# Each peer's whole summary (it asks its own processes first).
PEER_TIMEOUT: Final = aiohttp.ClientTimeout(total=3.0)


async def node_summary(
    ring: TrafficRing, processes: Mapping[str, Path], minutes: int, now: float
) -> dict[str, Any]:
    """This node's columns: its own ring and those of `processes` (name: socket) added."""
    bodies = await asyncio.gather(
        *(get(path, f"{RING_PATH}?minutes={minutes}", PROCESS_SECS) for path in processes.values())
    )
    raws = [ring.raw(minutes)]
    missing = []
    for name, body in zip(processes, bodies, strict=True):
        raw = _ring_of(body)
        if raw is None:
            missing.append(name)
        else:
            raws.append(raw)
    summary = series(merge(raws), minutes, now)
    if processes:
        summary["processes"] = len(processes) - len(missing)
        summary["missing_processes"] = missing
    return summary


def _ring_of(body: bytes | None) -> Any:
    """A process's ring, checked here so that a bad one is named missing, not a 500."""
    if body is None:
        return None
    try:
        raw = orjson.loads(body)
        merge([raw])
    except ValueError:  # not JSON, or not a ring (BadRing)
        return None
    return raw


async def peer_summaries(
    session: Upstream, peers: Mapping[str, str], headers: Mapping[str, str], minutes: int
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Each peer's own summary by name (`peers`: name -> http_url), and the peers that
    did not give one, with why."""
    answers = await asyncio.gather(
        *(_peer(session, url, headers, minutes) for url in peers.values())
    )
    found, missing = {}, []
    for name, (summary, error) in zip(peers, answers, strict=True):
        if summary is None:
            missing.append({"node": name, "error": error or "no answer"})
        else:
            found[name] = summary
    return found, missing


async def _peer(
    session: Upstream, url: str, headers: Mapping[str, str], minutes: int
) -> tuple[dict[str, Any] | None, str | None]:
    path = f"/ha/traffic?minutes={minutes}"
    answer, error = await peer_json(session, url, path, headers, PEER_TIMEOUT)
    if answer is None:
        return None, error
    nodes = answer.get("nodes")
    if not isinstance(nodes, dict) or len(nodes) != 1:
        return None, "/ha/traffic did not answer one node's summary"
    summary = next(iter(nodes.values()))
    return (summary, None) if isinstance(summary, dict) else (None, "not a summary")
