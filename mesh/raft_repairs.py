"""What pysyncobj 0.3.17 gets wrong under network partitions, repaired (issue 8).

`PartitionRepairs` is a mixin of mesh/raft.py's `SyncObj` subclass: it replaces
some of pysyncobj's private methods (see its docstring), so it is part of the
pysyncobj binding, kept apart from raft.py because it is long and self-contained.
The decisions themselves are in mesh/replication.py, pure and unit-tested; the
private pysyncobj state they are wired to is typed in mesh/syncobj_internals.pyi.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pysyncobj.pickle
from pysyncobj.monotonic import monotonic as pysyncobj_clock

from mesh import unpickler
from mesh.replication import (
    PROBE,
    SNAPSHOT,
    CatchUp,
    Progress,
    Reject,
    grant_pre_vote,
    match_entries,
)

if TYPE_CHECKING:
    from mesh.syncobj_internals import SyncObjInternals
else:
    SyncObjInternals = object  # the typed view exists for mypy only (see that module)

log = logging.getLogger(__name__)

# pysyncobj's node states (syncobj._RAFT_STATE).
FOLLOWER, CANDIDATE, LEADER = 0, 1, 2
# Entries per append message, at most (then `appendEntriesBatchSizeBytes` caps the bytes).
_BATCH_ENTRIES = 512


class PartitionRepairs(SyncObjInternals):
    """What pysyncobj 0.3.17 gets wrong under network partitions, repaired (issue 8).

    A mixin of `_MeshSyncObj`: each method named `_SyncObj__x` replaces pysyncobj's
    private `SyncObj.__x` (name-mangled, so that is its name from outside the class);
    pysyncobj's own code calls it through `self`, so ours runs instead. The decisions
    themselves are in mesh/replication.py, pure and unit-tested; here they are wired to
    pysyncobj's state.

    - **Replication** (the leader's `__sendAppendEntries`, both sides of
      `append_entries` and `next_node_idx`): see mesh/replication.py. A follower
      keeps the entries it has and truncates only at a real conflict; the leader
      tracks each follower in probe / replicate / snapshot mode, ignores stale
      answers, keeps at most `CatchUp.inflight_bytes` unacknowledged per follower,
      and, when a follower is more than `CatchUp.snapshot_gap` entries behind,
      compacts its log at once so that the follower gets a snapshot.
    - **Pre-vote and leader stickiness**: when its election timer fires, a node
      first asks the others whether they would vote for it (`pre_vote`), without
      raising its term; only with a majority's yes does pysyncobj campaign. A node
      that cannot reach a majority never raises its term, so a rejoining node
      cannot depose a healthy leader. A node that heard from a live leader in the
      last `raftMinTimeout / 2` says no, and ignores real vote requests too, unless
      they come from a leadership transfer (marked `transfer`).
    - **Leader contact**: when a follower last heard from a leader, and when a
      leader last heard from a majority, for `RaftStatus.stale`.
    """

    def _init_repairs(self, catchup: CatchUp) -> None:
        """Called before SyncObj.__init__ (so none of this is ever snapshotted)."""
        self._catchup = catchup
        self._progress: dict[Any, Progress] = {}
        self._transmission = bytearray()  # a large entry arriving in chunks
        self._leader_contact: float | None = None  # when a leader's append last arrived
        self._prevote_term: int | None = None  # the term of the pre-vote in progress
        self._prevote_grants: set[str] = set()
        self._campaign_approved = False  # a pre-vote passed: pysyncobj may campaign
        self._campaign_transfer = False  # this tick's campaign is a leadership transfer
        self._compact_now = False
        self._compacted_for_at = float("-inf")
        self.snapshots_sent = 0
        self.entries_sent = 0

    # -- messages --------------------------------------------------------------------

    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries":
            self._on_append_entries(node, message)
        elif kind == "next_node_idx":
            if self._SyncObj__raftState == LEADER:
                self._on_next_index(node, message)
        elif kind == "pre_vote":
            self._on_pre_vote(node, message)
        elif kind == "pre_vote_response":
            self._on_pre_vote_response(node, message)
        elif kind == "request_vote" and not message.get("transfer") and self._leader_is_live():
            return  # leader stickiness: a live leader is heard, this candidate is not needed
        else:
            super()._SyncObj__onMessageReceived(node, message)

    # -- the follower ----------------------------------------------------------------

    def _on_append_entries(self, node: Any, message: dict[str, Any]) -> None:
        """pysyncobj's handling of a leader's append, with our log matching."""
        term = message["term"]
        if term < self._SyncObj__raftCurrentTerm:
            # A leader of an older term. pysyncobj ignored it, which was enough while any
            # vote request deposed a leader; with stickiness, a node that campaigned and
            # lost keeps its later term, ignores this leader, and is refused every vote:
            # stuck for good. So tell the leader our term (etcd does the same); it steps
            # down, and the next election, with pre-vote, brings everyone to one term.
            self._answer(node, None, success=False, prev=None)
            return
        # As pysyncobj: follow this leader, and reset the election timer.
        if term > self._SyncObj__raftCurrentTerm:
            self._SyncObj__transferInProgress = False
        if not self._SyncObj__transferInProgress:
            timeout = self._SyncObj__generateRaftTimeout()
            self._SyncObj__raftElectionDeadline = pysyncobj_clock() + timeout
        if self._SyncObj__raftLeader != node:
            self._SyncObj__onLeaderChanged()
        self._SyncObj__raftLeader = node
        if term > self._SyncObj__raftCurrentTerm:
            self._SyncObj__setCurrentTerm(term, None)
        self._SyncObj__setState(FOLLOWER)
        self._SyncObj__leaderCommitIndex = message["commit_index"]
        self._leader_contact = time.monotonic()
        self._prevote_term = None
        self._campaign_approved = False
        serializer = self._SyncObj__serializer
        if "prevLogIdx" in message:
            self._append(node, message)
        elif message.get("serialized") and serializer.setTransmissionData(message["serialized"]):
            self._SyncObj__loadDumpFile(clearJournal=True)  # the snapshot's last chunk
            last = self._SyncObj__getCurrentLogIndex()
            if self._SyncObj__raftCommitIndex < last:  # a snapshot holds committed state only
                self._SyncObj__raftCommitIndex = last
                self._SyncObj__raftLog.setRaftCommitIndex(last)
            self._answer(node, last + 1, success=True, prev=None)
        # Otherwise a heartbeat without a log position: pysyncobj would move its commit index
        # to its own last entry here, committing entries nobody checked. We do not.

    def _append(self, node: Any, message: dict[str, Any]) -> None:
        entries = message.get("entries") or []
        chunk = message.get("transmission")
        if chunk is not None:  # one large entry in pieces (pysyncobj's format)
            if chunk == "start":
                self._transmission = bytearray()
            self._transmission += message["data"]
            if chunk != "finish":
                self._answer(node, None, success=False, prev=None)  # "go on"
                return
            entries = [unpickler.loads(bytes(self._transmission))]
            self._transmission = bytearray()
        log_ = self._SyncObj__raftLog
        first, last = log_[0][1], log_[-1][1]
        commit = self._SyncObj__raftCommitIndex
        prev = message["prevLogIdx"]

        def term_at(index: int) -> int | None:
            return log_[index - first][2] if first <= index <= last else None

        verdict = match_entries(term_at, first, last, commit, prev, message["prevLogTerm"], entries)
        if isinstance(verdict, Reject):
            self._answer(node, verdict.hint, success=False, prev=prev)
            return
        if verdict.truncate_from is not None:
            self._truncate(verdict.truncate_from)
        membership = self._SyncObj__conf.dynamicMembershipChange
        for entry in entries[verdict.keep_from :]:
            log_.add(*entry)
            if membership:
                change = self._SyncObj__parseChangeClusterRequest(entry[0])
                if change is not None:
                    self._SyncObj__doChangeCluster(change)
        commit = self._SyncObj__raftCommitIndex
        # Raft: up to the last entry known to match the leader, never further.
        target = min(message["commit_index"], verdict.last_new)
        if target > commit:
            self._SyncObj__raftCommitIndex = commit = target
        log_.setRaftCommitIndex(commit)
        self._answer(node, verdict.last_new + 1, success=True, prev=prev)

    def _truncate(self, index: int) -> None:
        """Delete our entries from `index` on: they conflict with the leader's."""
        if index <= self._SyncObj__raftLastApplied:
            # Cannot happen in Raft (an applied entry is committed); say so loudly if it does.
            log.critical(
                "log entry %d conflicts with the leader's, but it was already applied "
                "(last applied %d): this replica may have diverged",
                index,
                self._SyncObj__raftLastApplied,
            )
        if self._SyncObj__conf.dynamicMembershipChange:
            for entry in reversed(self._SyncObj__getEntries(index)):
                change = self._SyncObj__parseChangeClusterRequest(entry[0])
                if change is not None:
                    self._SyncObj__doChangeCluster(change, reverse=True)
        self._SyncObj__deleteEntriesFrom(index)
        if self._SyncObj__raftCommitIndex >= index:
            self._SyncObj__raftCommitIndex = index - 1

    def _answer(
        self, node: Any, next_index: int | None, *, success: bool, prev: int | None
    ) -> None:
        """pysyncobj's `next_node_idx`, plus `prev` (which append this answers) and our term.

        A rejection carries `reset` (pysyncobj's word for it) and our hint as the next
        index; a chunk of a large entry, or an append of an older term, with neither."""
        rejected = not success and next_index is not None
        if next_index is None:
            next_index = self._SyncObj__getCurrentLogIndex() + 1
        self._SyncObj__transport.send(
            node,
            {
                "type": "next_node_idx",
                "next_node_idx": next_index,
                "reset": rejected,
                "success": success,
                "prev": prev,
                "term": self._SyncObj__raftCurrentTerm,
            },
        )

    # -- the leader ------------------------------------------------------------------

    def _progress_of(self, node: Any) -> Progress:
        progress = self._progress.get(node)
        if progress is None:
            last = self._SyncObj__getCurrentLogIndex()
            progress = Progress(
                next=self._SyncObj__raftNextIndex.get(node, last + 1),
                match=self._SyncObj__raftMatchIndex.get(node, 0),
            )
            self._progress[node] = progress
        return progress

    def _mirror(self, node: Any, progress: Progress) -> None:
        """pysyncobj reads these for the commit index, transfers and its status."""
        self._SyncObj__raftNextIndex[node] = progress.next
        self._SyncObj__raftMatchIndex[node] = progress.match

    def _SyncObj__onBecomeLeader(self) -> None:
        self._progress.clear()  # pysyncobj resets next/match: probe every follower afresh
        super()._SyncObj__onBecomeLeader()

    def _SyncObj__onNodeConnected(self, node: Any) -> None:
        self._relink(node)
        super()._SyncObj__onNodeConnected(node)

    def _SyncObj__onNodeDisconnected(self, node: Any) -> None:
        self._relink(node)
        super()._SyncObj__onNodeDisconnected(node)

    def _SyncObj__onReadonlyNodeDisconnected(self, node: Any) -> None:
        self._progress.pop(node, None)
        super()._SyncObj__onReadonlyNodeDisconnected(node)

    def _relink(self, node: Any) -> None:
        """A link opened or closed: whatever was in flight on the old one is lost."""
        progress = self._progress.get(node)
        if progress is not None:
            self._SyncObj__serializer.cancelTransmisstion(node)
            progress.probe()
            self._mirror(node, progress)

    def _on_next_index(self, node: Any, message: dict[str, Any]) -> None:
        if message.get("term", 0) > self._SyncObj__raftCurrentTerm:
            # A node at a later term (see `_on_append_entries`): step down, as pysyncobj does
            # on a vote request of a later term.
            self._SyncObj__setCurrentTerm(message["term"], None)
            self._SyncObj__setState(FOLLOWER)
            self._SyncObj__raftLeader = None
            return
        now = pysyncobj_clock()
        self._SyncObj__lastResponseTime[node] = now
        progress = self._progress_of(node)
        if message.get("success"):
            progress.on_success(message["next_node_idx"])
        elif not message.get("reset") or not progress.on_reject(
            message.get("prev"), message["next_node_idx"]
        ):
            return  # a chunk acknowledged, or a stale answer: nothing learnt
        self._mirror(node, progress)
        self._snapshot_if_far_behind(node, progress, now)
        if node in self._SyncObj__connectedNodes:
            self._send_to(node, progress, now)  # keep the pipe full, or probe again at once

    def _SyncObj__sendAppendEntries(self) -> None:
        """Every append the leader sends (pysyncobj calls this on each heartbeat period,
        after each new command and after applying entries)."""
        now = pysyncobj_clock()
        self._SyncObj__newAppendEntriesTime = now + self._SyncObj__conf.appendEntriesPeriod
        for node in self._SyncObj__otherNodes | self._SyncObj__readonlyNodes:
            if node in self._SyncObj__connectedNodes:
                self._send_to(node, self._progress_of(node), now)

    def _send_to(self, node: Any, progress: Progress, now: float) -> None:
        log_ = self._SyncObj__raftLog
        period = self._SyncObj__conf.appendEntriesPeriod
        if progress.mode == SNAPSHOT or progress.next <= log_[0][1]:
            self._send_snapshot(node, progress, now)
        elif progress.mode == PROBE:
            if progress.may_probe(now, period):
                self._send_entries(node, progress, now)
        else:
            sent = False
            last = log_[-1][1]
            while progress.next <= last and progress.can_pipeline(self._catchup.inflight_bytes):
                sent = True
                if not self._send_entries(node, progress, now):
                    return
            commit = self._SyncObj__raftCommitIndex
            if not sent and (now - progress.last_sent >= period or progress.sent_commit < commit):
                self._send_entries(node, progress, now, heartbeat=True)

    def _send_entries(
        self, node: Any, progress: Progress, now: float, heartbeat: bool = False
    ) -> bool:
        """One append from `progress.next`; False if the link closed while sending."""
        conf = self._SyncObj__conf
        prev = progress.next - 1
        prev_term = self._SyncObj__getEntries(prev, 1)[0][2]
        entries = (
            []
            if heartbeat
            else self._SyncObj__getEntries(
                progress.next, _BATCH_ENTRIES, conf.appendEntriesBatchSizeBytes
            )
        )
        commit = self._SyncObj__raftCommitIndex
        base = {"type": "append_entries", "term": self._SyncObj__raftCurrentTerm}
        base |= {"commit_index": commit, "prevLogIdx": prev, "prevLogTerm": prev_term}
        transport = self._SyncObj__transport
        size = sum(len(e[0]) for e in entries)
        if len(entries) == 1 and size >= conf.appendEntriesBatchSizeBytes:
            data = pysyncobj.pickle.dumps(entries[0])
            step = conf.appendEntriesBatchSizeBytes
            for at in range(0, len(data), step):
                part = "start" if at == 0 else "process"
                if at + step >= len(data):
                    part = "finish"  # pysyncobj compared with the command's length here
                transport.send(node, base | {"transmission": part, "data": data[at : at + step]})
        else:
            transport.send(node, base | {"entries": entries})
        progress.sent(entries[-1][1] if entries else prev, size, now)
        progress.sent_commit = commit
        self.entries_sent += len(entries)
        self._mirror(node, progress)
        return node in self._SyncObj__connectedNodes

    def _send_snapshot(self, node: Any, progress: Progress, now: float) -> None:
        """Send the last snapshot in chunks, while the link's unsent backlog stays under
        the in-flight cap, once it covers what the follower lacks (the log was compacted
        past it, perhaps for this follower: `_snapshot_if_far_behind`)."""
        if progress.mode != SNAPSHOT:
            progress.to_snapshot(now)
            log.info("sending a snapshot to %s (it lacks compacted entries)", node.id)
        transport = self._SyncObj__transport
        base = {"type": "append_entries", "term": self._SyncObj__raftCurrentTerm}
        base |= {"commit_index": self._SyncObj__raftCommitIndex, "serialized": None}
        due = now - progress.last_sent >= self._SyncObj__conf.appendEntriesPeriod
        if progress.snapshot_done_at is not None or progress.next > self._SyncObj__raftLog[0][1]:
            # Sent, and waiting for the follower to load it; or waiting for a compaction.
            waited = now - (progress.snapshot_done_at or progress.snapshot_since)
            if waited > self._catchup.snapshot_answer_timeout:
                progress.probe()  # never came: entries after all
                self._mirror(node, progress)
            elif due:
                progress.last_sent = now
                transport.send(node, base)  # a heartbeat: it carries no log position
            return
        while transport.backlog(node) < self._catchup.inflight_bytes:
            data = self._SyncObj__serializer.getTransmissionData(node)
            if not data:  # None: a snapshot is being written; False: it could not be read
                if due:
                    progress.last_sent = now
                    transport.send(node, base)
                return
            transport.send(node, base | {"serialized": data})
            progress.last_sent = now
            if node not in self._SyncObj__connectedNodes:
                return
            if data[2]:  # the last chunk
                self.snapshots_sent += 1
                progress.snapshot_sent(self._SyncObj__raftLog[1][1], now)
                self._mirror(node, progress)
                return

    def _snapshot_if_far_behind(self, node: Any, progress: Progress, now: float) -> None:
        """A follower further behind than `snapshot_gap` entries gets a snapshot rather
        than the entries: compact the log now (at most once per `snapshot_gap_every`),
        and send only heartbeats until the new snapshot covers it."""
        gap = self._SyncObj__getCurrentLogIndex() - (progress.next - 1)
        if (
            progress.mode == SNAPSHOT
            or gap <= self._catchup.snapshot_gap
            or now - self._compacted_for_at < self._catchup.snapshot_gap_every
        ):
            return
        log.info("%s is %d entries behind: compacting the log to send it a snapshot", node.id, gap)
        self._compacted_for_at = now
        self._compact_now = True
        progress.to_snapshot(now)

    def _SyncObj__tryLogCompaction(self) -> None:
        """pysyncobj's compaction; when a follower needs a snapshot, at once, outside
        this node's time slot (`logCompactionSplit` would make it wait up to minutes)."""
        if not self._compact_now:
            super()._SyncObj__tryLogCompaction()
            return
        conf = self._SyncObj__conf
        split = conf.logCompactionSplit
        conf.logCompactionSplit = False
        self._SyncObj__forceLogCompaction = True
        try:
            super()._SyncObj__tryLogCompaction()
        finally:
            conf.logCompactionSplit = split
        if not self._SyncObj__forceLogCompaction:  # taken: a dump is being written
            self._compact_now = False

    # -- elections -------------------------------------------------------------------

    def _leader_is_live(self) -> bool:
        """Has this node heard from a live leader (itself: from a majority) just now?

        "Just now" is half the shortest election timeout (three heartbeats): shorter than
        the time any follower waits before it asks for votes, so when the leader dies, the
        first follower to ask is not turned down by one that heard it a moment later."""
        now = time.monotonic()
        lease = self._SyncObj__conf.raftMinTimeout / 2
        if self._SyncObj__raftState == LEADER:
            contact = self.leader_contact()
        elif self._SyncObj__raftLeader is not None:
            contact = self._leader_contact
        else:
            return False
        return contact is not None and now - contact < lease

    def _before_tick(self) -> None:
        """Turn the election pysyncobj is about to start into a pre-vote, unless it is
        approved already or a leadership transfer (Raft's TimeoutNow: no pre-vote)."""
        if self._SyncObj__selfNode is None or self._SyncObj__raftState == LEADER:
            return
        now = pysyncobj_clock()
        if self._SyncObj__raftElectionDeadline >= now:
            return
        if not self._SyncObj__transport.ready or not self._SyncObj__connectedToAnyone():
            return  # pysyncobj will not campaign either
        if self._SyncObj__transferInProgress:
            self._campaign_transfer = True
            return
        if self._campaign_approved:
            self._campaign_approved = False
            return
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()
        self._prevote_term = self._SyncObj__raftCurrentTerm + 1
        self._prevote_grants = {self._SyncObj__selfNode.id}
        message = {
            "type": "pre_vote",
            "term": self._prevote_term,
            "last_log_index": self._SyncObj__getCurrentLogIndex(),
            "last_log_term": self._SyncObj__getCurrentLogTerm(),
        }
        for node in self._SyncObj__otherNodes:
            self._SyncObj__transport.send(node, message)
        self._count_pre_votes()

    def _count_pre_votes(self) -> None:
        if len(self._prevote_grants) > (len(self._SyncObj__otherNodes) + 1) / 2:
            self._prevote_term = None
            self._campaign_approved = True
            self._SyncObj__raftElectionDeadline = 0  # campaign on the next tick

    def _on_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        if self._SyncObj__selfNode is None:
            return  # a read-only member does not vote
        current = self._SyncObj__raftCurrentTerm
        granted = grant_pre_vote(
            asked_term=message["term"],
            current_term=current,
            candidate_last=(message["last_log_term"], message["last_log_index"]),
            own_last=(self._SyncObj__getCurrentLogTerm(), self._SyncObj__getCurrentLogIndex()),
            leader_is_live=self._leader_is_live(),
        )
        answer = {"type": "pre_vote_response", "term": message["term"], "granted": granted}
        self._SyncObj__transport.send(node, answer | {"current_term": current})

    def _on_pre_vote_response(self, node: Any, message: dict[str, Any]) -> None:
        if self._SyncObj__raftState == LEADER:
            return
        if message.get("granted"):
            if message["term"] == self._prevote_term:
                self._prevote_grants.add(node.id)
                self._count_pre_votes()
        elif message.get("current_term", 0) > self._SyncObj__raftCurrentTerm:
            # A voter at a later term: take its term (this changes nobody else's), so our next
            # pre-vote asks for a term it can grant (etcd does the same).
            self._SyncObj__setCurrentTerm(message["current_term"], None)
            self._SyncObj__setState(FOLLOWER)
            self._prevote_term = None

    def _stamp(self, message: Any) -> Any:
        """Mark the vote requests of a leadership transfer (voters set stickiness aside)."""
        transfer = self._campaign_transfer and isinstance(message, dict)
        if transfer and message.get("type") == "request_vote":
            return message | {"transfer": True}
        return message

    # -- what the status reports -----------------------------------------------------

    def leader_contact(self) -> float | None:
        """time.monotonic() of the last append from a leader; on a leader, of the last
        answer that completed a majority. None before any."""
        if self._SyncObj__raftState != LEADER:
            return self._leader_contact
        others = self._SyncObj__otherNodes
        needed = (len(others) + 1) // 2  # followers that make a majority with us
        if needed == 0:
            return time.monotonic()
        times = sorted((self._SyncObj__lastResponseTime.get(n, 0.0) for n in others), reverse=True)
        if len(times) < needed:
            return None
        # pysyncobj stamps answers with CLOCK_MONOTONIC_RAW, which drifts from
        # time.monotonic() (0.1 s and more after hours of uptime): convert.
        offset: float = time.monotonic() - pysyncobj_clock()
        return times[needed - 1] + offset
