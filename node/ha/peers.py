"""What this node knows about the other nodes, from asking them.

Raft tells a node little about its peers (a follower knows only whether it is
connected to each). So every node polls every other member's `/ha/local` once
a second (a member it has never asked, at once) and keeps the last answer:
role, applied index, version, draining, its view of worker health, its
rate-limit counters and its side of the quota shares (node/limits/shares.py:
what it wants, lends and gives back). `/ha/status`,
`/ha/workers` and `/ha/rate-limit/stats` are built from these views, and the
number of nodes currently serving (which sets each node's share of a rate
limit) is counted from them.

Node-to-node calls carry a token derived from the mesh secret, so a node
needs no operator credential to ask its peers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from node.proxy.failures import did_not_answer
from node.proxy.upstream import Upstream
from node.service import Periodic, cancel_and_wait

MESH_TOKEN_HEADER = "X-Meshgate-Mesh-Token"


def mesh_token(secret: str) -> str:
    """The token nodes present to each other's `/ha/local`: derived from the mesh secret only."""
    if not secret:
        raise ValueError("a mesh token needs the mesh secret")
    return hmac.new(secret.encode(), b"meshgate/ha/local", hashlib.sha256).hexdigest()


async def peer_json(
    session: Upstream,
    http_url: str,
    path: str,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
) -> tuple[dict[str, Any] | None, str | None]:
    """A peer's JSON object at `path` (asked with the mesh token in `headers`), or None
    and why not."""
    try:
        async with session.get(http_url + path, headers=dict(headers), timeout=timeout) as resp:
            if resp.status != 200:
                return None, f"{path} answered {resp.status}"
            answer = await resp.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, f"{path} {did_not_answer(exc)}"
    except ValueError:
        return None, f"{path} did not answer JSON"
    if not isinstance(answer, dict):
        return None, f"{path} did not answer a JSON object"
    return answer, None


@dataclass
class PeerView:
    name: str
    http_url: str
    reachable: bool = False
    polled: bool = False  # asked at least once (an answer or an error)
    last_contact: float | None = None  # unix time of the last good answer
    sent_at: float = 0.0  # monotonic time the request of the last good answer was sent
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


class PeerPoller:
    def __init__(
        self,
        session: Upstream,
        members: Callable[[], dict[str, dict[str, Any]]],
        self_name: str,
        token: str,
        interval: float = 1.0,
        timeout: float = 0.8,
    ) -> None:
        self.session = session
        self.members = members
        self.self_name = self_name
        self.headers = {MESH_TOKEN_HEADER: token}
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.views: dict[str, PeerView] = {}
        self.on_polled: list[Callable[[], None]] = []  # run after each round of polls
        self._service = Periodic("peer-poller", self.poll_once, interval, immediately=True)
        self._first_polls: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._service.start()

    async def stop(self) -> None:
        await self._service.stop()
        await cancel_and_wait(list(self._first_polls))

    async def poll_once(self) -> None:
        members = self._others()
        for gone in set(self.views) - set(members):
            del self.views[gone]
        await asyncio.gather(*(self._poll(name, m["http_url"]) for name, m in members.items()))
        for hook in self.on_polled:
            hook()

    def poll_newcomers(self) -> None:
        """Ask each member never asked yet now, not at the next round: a node that has
        just joined (or every member, for a node that has just started) is seen alive
        at once instead of up to an interval later."""
        for name, member in self._others().items():
            if name in self.views:
                continue
            self.views[name] = PeerView(name, member["http_url"])  # one first poll each
            task = asyncio.create_task(self._poll(name, member["http_url"]), name="peer-poll")
            self._first_polls.add(task)
            task.add_done_callback(self._first_polls.discard)

    def _others(self) -> dict[str, dict[str, Any]]:
        return {n: m for n, m in self.members().items() if n != self.self_name}

    async def _poll(self, name: str, http_url: str) -> None:
        view = self.views.get(name)
        if view is None or view.http_url != http_url:
            view = self.views[name] = PeerView(name, http_url)
        sent_at = time.monotonic()
        report, error = await self._fetch(http_url)
        if report is None:
            return self._failed(view, error or "/ha/local did not answer")
        view.sent_at = sent_at
        view.polled = True
        view.reachable = True
        view.error = None
        view.last_contact = time.time()
        view.report = report

    async def report_of(self, http_url: str) -> dict[str, Any] | None:
        """The `/ha/local` report of whatever node answers at `http_url`, None if none does."""
        report, _ = await self._fetch(http_url)
        return report

    async def _fetch(self, http_url: str) -> tuple[dict[str, Any] | None, str | None]:
        """A node's `/ha/local` report, or None and why not."""
        return await peer_json(self.session, http_url, "/ha/local", self.headers, self.timeout)

    @staticmethod
    def _failed(view: PeerView, error: str) -> None:
        view.polled = True
        view.reachable = False
        view.error = error

    def serving_or_unpolled(self, name: str) -> bool:
        """Serving, or not asked yet (then assume it is: a share errs towards small)."""
        view = self.views.get(name)
        return view is None or not view.polled or self.serving(name)

    def serving(self, name: str) -> bool:
        """Is the peer reachable, not draining, ready, and able to serve inference (a
        healthy worker: a ready node without one takes no share of a rate limit)?"""
        view = self.views.get(name)
        if not (view and view.reachable):
            return False
        report = view.report
        # A peer of an earlier version does not say; it was not ready without a worker.
        can_serve = report.get("has_healthy_worker", True)
        return bool(report.get("ready") and can_serve and not report.get("draining"))
