"""Drain and stop this node, once: on SIGTERM or on a committed shutdown plan naming it.

The steps, in order, are what keeps a restart from failing a single client
request: report not-ready at once (the load balancer starts routing around
us), keep serving for `drain_delay` (it needs a few health checks to notice),
wait for requests in flight (streams included) up to `grace`, hand Raft
leadership to a caught-up follower if we lead (so writes don't stall for an
election), then let the process exit: 0, so that a supervisor restarts it, or,
in a cluster shutdown, `CLUSTER_SHUTDOWN`, so that it stays down
(node/exit_status.py). A plan names each target's boot id, so replaying an old
plan from the journal after a restart does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from mesh.raft import MeshRaft
from node import exit_status
from node.limits.admission import Admission

log = logging.getLogger(__name__)


class Stopper:
    """Carries out one stop of this run of the node (`name`, `boot_id`).

    It reads Raft (plans, leadership), admission (requests in flight) and, in a
    cluster shutdown, whether a peer still answers (`peer_reachable`)."""

    def __init__(
        self,
        name: str,
        boot_id: str,
        raft: MeshRaft,
        admission: Admission,
        peer_reachable: Callable[[str], bool],
    ) -> None:
        self.name = name
        self.boot_id = boot_id
        self.raft = raft
        self.admission = admission
        self.peer_reachable = peer_reachable
        self.draining = False  # set once stopping starts: this node reports not-ready
        self.stopped = asyncio.Event()
        self.reason: str | None = None
        self.step = "running"
        self.exit_code = exit_status.STOPPED  # what `meshgate serve` exits with once stopped
        self._task: asyncio.Task[None] | None = None
        self._at_once = asyncio.Event()  # nobody waits for a drain any more: cut it short
        # Called once when stopping starts, whatever started it (a signal, a plan, a
        # refusal), with its grace period and drain delay.
        self.on_request: list[Callable[[float, float], None]] = []

    @property
    def requested(self) -> bool:
        return self._task is not None

    def request(
        self,
        reason: str,
        grace: float,
        drain_delay: float,
        hand_over: bool = True,
        wait_for: list[str] | None = None,
    ) -> None:
        """Start stopping. `wait_for`: in a cluster shutdown, the other nodes the leader
        outlives, so that each of them learns the plan is committed before it goes."""
        if self._task is not None:
            return  # already stopping; the first request's timings stand
        self.reason = reason
        self._task = asyncio.get_running_loop().create_task(
            self._run(grace, drain_delay, hand_over, wait_for or []), name="shutdown"
        )
        for started in self.on_request:
            started(grace, drain_delay)

    def stop_at_once(self, reason: str) -> None:
        """Stop now, with no drain: start stopping so, or cut short a drain under way (a
        data-plane process whose control process is gone serves nobody's drain)."""
        if self._at_once.is_set():
            return  # the link and the kernel's signal both say so: once is enough
        self._at_once.set()
        if self._task is None:
            self.request(reason, grace=0.0, drain_delay=0.0, hand_over=False)
        else:
            log.warning("stopping at once: %s", reason)

    def refuse(self, reason: str) -> None:
        """Stop at once and exit 2: this node must not join the mesh as configured."""
        if self._task is None:
            self.exit_code = exit_status.REFUSED
        self.request(reason, grace=0.0, drain_delay=0.0, hand_over=False)

    def follow(self, plan: dict[str, Any]) -> None:
        """Carry out a committed shutdown plan (the control loop hands over the ones that
        name this run of the node)."""
        cluster = plan["scope"] == "cluster"
        if cluster and self.exit_code == exit_status.STOPPED:
            self.exit_code = exit_status.CLUSTER_SHUTDOWN  # the supervisor must not restart us
        self.request(
            f"shutdown plan {plan['id']} from {plan['requested_by']}",
            grace=float(plan["grace_period_secs"]),
            drain_delay=float(plan["drain_delay_secs"]),
            hand_over=not cluster,
            wait_for=[n for n in plan["targets"] if n != self.name] if cluster else [],
        )

    async def _run(
        self, grace: float, drain_delay: float, hand_over: bool, wait_for: list[str]
    ) -> None:
        raft, admission = self.raft, self.admission
        try:
            self.draining = True
            self.step = "draining"
            log.info("stopping (%s): not ready now, serving %.1fs more", self.reason, drain_delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._at_once.wait(), drain_delay)
            self.step = "waiting for in-flight requests"
            deadline = time.monotonic() + grace
            while admission.in_flight > 0 and time.monotonic() < deadline:
                if self._at_once.is_set():
                    break
                await asyncio.sleep(0.05)
            if admission.in_flight:
                log.warning("grace period over with %d request(s) in flight", admission.in_flight)
            if wait_for and raft.status().is_leader:
                self.step = "waiting for the other nodes to stop"
                await self._outlive(wait_for, deadline=time.monotonic() + 15.0)
            if hand_over and raft.status().is_leader and raft.status().peers:
                self.step = "handing over leadership"
                moved = await raft.transfer_leadership(within=2.0)
                log.info(
                    "leadership %s", "handed over" if moved else "not handed over; stopping anyway"
                )
        finally:
            self.step = "stopped"
            self.stopped.set()

    async def _outlive(self, names: list[str], deadline: float) -> None:
        """Keep leading (and so telling followers the commit index) until they are gone."""
        while time.monotonic() < deadline:
            if not any(self.peer_reachable(name) for name in names):
                return
            await asyncio.sleep(0.1)
