"""A leader's hand-over without a split vote, wired to pysyncobj (issue 10).

pysyncobj's `transferLeadership()` sends `timeout_now` to a follower that has every
entry *now*, and the leader goes on appending. Under steady writes the follower's vote
request then carries a log shorter than the leader's and the other follower's, both
refuse it, the vote splits, and writes stall for an election timeout or two (360-910 ms
in rolling restarts). `LeaderHandOver` is a mixin of mesh/raft.py's `SyncObj` subclass
that does it as the Raft thesis (§3.10) says instead: pick the longest log, append
nothing new, wait until the target has every entry, then tell it to campaign. Its
decisions are in mesh/handover.py, pure and unit-tested.

Commands submitted meanwhile stay in pysyncobj's queue, this node's and the ones
followers forwarded alike. Once another node leads, pysyncobj takes them from the
queue as usual: this node's own are forwarded to the new leader, and a forwarded
one is answered "not leader", which its proposer resubmits (it never entered a log,
so nothing is lost and nothing applies twice). If the pause runs out first, the queue
is taken as before, wherever leadership then is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pysyncobj.monotonic import monotonic as pysyncobj_clock

from mesh.handover import Candidate, HandOver, Step, choose_target

if TYPE_CHECKING:
    from mesh.syncobj_internals import SyncObjInternals
else:
    SyncObjInternals = object  # the typed view exists for mypy only (see that module)

log = logging.getLogger(__name__)

_LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER


class LeaderHandOver(SyncObjInternals):
    """A mixin of `_MeshSyncObj`: `start_hand_over()` on the Raft thread, and
    `_advance_hand_over()` at the start of each tick."""

    def _init_hand_over(self, pause: float) -> None:
        """Called before SyncObj.__init__ (so none of this is ever snapshotted)."""
        self._hand_over: HandOver | None = None
        self._hand_over_pause = pause

    def start_hand_over(self) -> str | None:
        """Begin handing leadership over (Raft thread); the target's address, or None when
        this node does not lead or reaches no follower. A hand-over in progress goes on."""
        if self._SyncObj__raftState != _LEADER:
            return None
        if self._hand_over is not None:
            return self._hand_over.target
        target = choose_target(self._candidates())
        if target is None:
            return None
        self._hand_over = HandOver(target, until=pysyncobj_clock() + self._hand_over_pause)
        log.info(
            "handing leadership over to %s (its log reaches %d, ours %d); holding new commands",
            target,
            self._match_of(target),
            self._SyncObj__getCurrentLogIndex(),
        )
        self._advance_hand_over()
        return target

    def _candidates(self) -> list[Candidate]:
        connected = self._SyncObj__connectedNodes
        return [
            Candidate(
                node=node.id,
                match=self._SyncObj__raftMatchIndex.get(node, 0),
                contact=self._SyncObj__lastResponseTime.get(node, 0.0),
                connected=node in connected,
            )
            for node in self._SyncObj__otherNodes
        ]

    def _node(self, address: str) -> Any:
        return next((n for n in self._SyncObj__otherNodes if n.id == address), None)

    def _match_of(self, address: str) -> int:
        node = self._node(address)
        return self._SyncObj__raftMatchIndex.get(node, 0) if node is not None else 0

    def _advance_hand_over(self) -> None:
        """Take the hand-over's next step (Raft thread; at the start of each tick, so that
        the commands held back are let go in the very tick that learns the new leader)."""
        hand_over = self._hand_over
        if hand_over is None:
            return
        now = pysyncobj_clock()
        leading = self._SyncObj__raftState == _LEADER
        step = hand_over.next_step(
            now,
            leading=leading,
            other_leader=not leading and self._SyncObj__raftLeader is not None,
            target_match=self._match_of(hand_over.target),
            last_index=self._SyncObj__getCurrentLogIndex(),
            resend_after=self._SyncObj__conf.raftMinTimeout,
        )
        if step is Step.SEND:
            node = self._node(hand_over.target)
            if node is not None and node in self._SyncObj__connectedNodes:
                # pysyncobj's own message: the target campaigns on its next tick, without
                # pre-vote, and its vote requests are marked as a transfer's (stickiness yields).
                message = {"type": "timeout_now", "term": self._SyncObj__raftCurrentTerm}
                self._SyncObj__transport.send(node, message)
                hand_over.sent_at = now
        elif step is Step.DONE:
            self._hand_over = None
            leader = self._SyncObj__raftLeader
            log.info("leadership handed over: %s leads", leader.id if leader else None)
        elif step is Step.GIVE_UP:
            self._hand_over = None
            log.warning(
                "leadership not handed over to %s within %.1fs; letting commands through",
                hand_over.target,
                self._hand_over_pause,
            )

    def _checkCommandsToApply(self) -> None:
        """pysyncobj's step that takes queued commands into the log (or forwards them):
        skipped while a hand-over holds them back."""
        if self._hand_over is None:
            super()._checkCommandsToApply()
