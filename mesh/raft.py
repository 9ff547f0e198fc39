"""The pysyncobj binding: submit a command, await its commit; read the group's status.

This module, with the parts of the binding it is built from (the Raft transport
in mesh/transport.py and mesh/connection.py, its keys in mesh/keyring.py, the
partition repairs in mesh/raft_repairs.py, the leader's stamp in
mesh/stamping.py), are the only ones that import pysyncobj. Everything else sees:
- `await raft.submit(command)` -> the command's outcome, once committed and
  applied on this node, or `CommitError` (no leader, timeout...) within a
  bounded time;
- `raft.state` -> this node's replica of `ControlState` (read-only);
- `raft.status()` -> an immutable snapshot of the Raft group as this node sees it;
- the `AppliedStream` given at construction, fed every applied command.

Settings and rules follow shared/RAFT.md: no batching (1 ms commits), journal
and full dump together, always a password (the mesh secret), fast
timeouts for a LAN, no queueing while leaderless (we retry ourselves, bounded),
one replicated entry point (`apply`), and internal calls made on the Raft
thread through a tick callback.

What pysyncobj does not do, this module adds (issue 7):
- our own transport (`MeshTransport`): frames capped before they are buffered,
  a handshake deadline, caps on unauthenticated connections;
- every unpickle pysyncobj does (messages, log entries, journal meta,
  snapshots) goes through `mesh.unpickler`, which builds plain data only;
- a committed entry that cannot be applied (bad pickle, refused class,
  unknown method id, wrong arity, a code-version entry) becomes a failed
  outcome, the same on every node, instead of being retried on every tick
  forever (`_MeshSyncObj`);
- `liveness_problem()`: the Raft thread is stopped, failing every tick, or stalled;
- honest outcomes (issue 8): `submit` tells "never reached a leader's log" from
  "may be in one" for every way pysyncobj reports a command (`_NOT_IN_A_LOG`,
  `_MAYBE_IN_A_LOG`), and a command it gave up on cannot land late: the
  proposer stamps an expiry, the leader stamps its clock as it takes the
  command into its log (`StampingQueue`, mesh/stamping.py), `ControlState.apply`
  refuses the command when the stamp is past the expiry, and the proposer answers
  "unknown" only once its own clock is past the expiry plus the clock-skew
  allowance. docs/consistency.md has the argument.

and what it gets wrong under network partitions, repaired (issue 8,
`PartitionRepairs` in mesh/raft_repairs.py; the rules in mesh/replication.py):
- catch-up that converges: no truncation of matching entries, stale answers
  ignored, bounded bytes in flight, a snapshot when a follower is far behind;
- pre-vote and leader stickiness: a node that cannot reach a majority never
  raises its term, so one that rejoins deposes nobody;
- dead links noticed in about a second (pings and a silence check on every
  link, mesh/connection.py);
- `RaftStatus.stale`, `behind_by`, `caught_up`: a node cut off from the leader
  says so, and does not vouch for revocable credentials (node/auth.py).

and a leader's hand-over that does not split the vote (issue 10, `LeaderHandOver` in
mesh/raft_handover.py; the rules in mesh/handover.py): the longest log is chosen, new
commands are held back until it has every entry, and only it campaigns.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import pysyncobj.pickle
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.monotonic import monotonic as pysyncobj_clock
from pysyncobj.syncobj import _COMMAND_TYPE

from mesh import unpickler
from mesh.commands import LONGEST_WAIT, Command, Outcome, fail
from mesh.events import Applied, AppliedStream
from mesh.keyring import keyring, raft_key
from mesh.raft_handover import LeaderHandOver
from mesh.raft_repairs import LEADER, PartitionRepairs
from mesh.refusals import Refusals
from mesh.replication import CatchUp
from mesh.stamping import StampingQueue
from mesh.state import ControlState
from mesh.transport import Liveness, MeshTransport

log = logging.getLogger(__name__)
T = TypeVar("T")

# How pysyncobj reports a command that did not (yet) commit, split by what it proves.
#
# Not in any log that can commit it: the command never reached a leader's log, or the
# slot it got there was taken by another entry.
# - MISSING_LEADER: no leader was known when the Raft thread took it from this node's
#   queue, so it never left the node; or the node it was sent to answered that it knows
#   no leader (an explicit refusal: nothing was added to a log).
# - NOT_LEADER: the node it was sent to is no longer leader and said so, without adding it.
# - QUEUE_FULL: a command queue (ours, or the leader's, which then answers so) was full.
# - REQUEST_DENIED: refused outright (membership changes only).
# - DISCARDED: it was in a leader's log at (index, term), and this node has since applied
#   a different term's entry at that index. An (index, term) pair names one entry for
#   ever, so that copy can never commit.
_NOT_IN_A_LOG = {
    FAIL_REASON.MISSING_LEADER: "no_leader",
    FAIL_REASON.NOT_LEADER: "not_leader",
    FAIL_REASON.QUEUE_FULL: "queue_full",
    FAIL_REASON.REQUEST_DENIED: "denied",
    FAIL_REASON.DISCARDED: "discarded",
}
# Maybe in a log that can still commit it: the outcome is unknown.
# - LEADER_CHANGED: it was sent to the leader and no answer came before this node saw
#   another leader (or started an election). The leader may have logged it, and TCP may
#   still deliver it: fault 1 of issue 8.
# - UNKNOWN_OUTCOME: the leader logged it at an index this node had already applied
#   (from a snapshot, say), so this node cannot tell whether that entry was ours.
# - our own timeout (no callback in time): it may be anywhere on the way.
# Resubmitting the same command (same request id, same expiry) is safe after both
# kinds: `ControlState.apply` answers a request id it has applied with its first
# outcome, and remembers it as long as a copy can still be applied.
_MAYBE_IN_A_LOG = {
    FAIL_REASON.LEADER_CHANGED: "leader_changed",
    FAIL_REASON.UNKNOWN_OUTCOME: "unknown_outcome",
}
# Not worth resubmitting within one submit: the answer would not change.
_FINAL = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.REQUEST_DENIED}
_RAFT_STATES = {0: "follower", 1: "candidate", 2: "leader"}
# Entry types pysyncobj's apply step handles: commands, no-ops, membership changes.
_APPLIED_KINDS = bytes([_COMMAND_TYPE.REGULAR, _COMMAND_TYPE.NO_OP, _COMMAND_TYPE.MEMBERSHIP])
_VERSION_KIND = bytes([_COMMAND_TYPE.VERSION])
# pysyncobj's own unpicklers, replaced by ours wherever a pysyncobj module holds them.
_PYSYNCOBJ_UNPICKLERS = {
    pysyncobj.pickle.loads: unpickler.loads,
    pysyncobj.pickle.load: unpickler.load,
}


NOT_COMMITTED: Final = "not_committed"
UNKNOWN: Final = "unknown"


class CommitError(Exception):
    """A command was not (known to be) committed.

    `outcome` is NOT_COMMITTED when this node knows that no copy of the command is in
    a log that can commit it (it never reached a leader's log, or its slot went to
    another entry, or it was refused as expired), so it never will be applied; UNKNOWN
    otherwise: it may have been applied, or may still be, though never after anything
    proposed after this error was raised (docs/consistency.md). `reason` is a short word;
    `timed_out` says that the wait ran out rather than pysyncobj reporting a failure."""

    def __init__(
        self,
        reason: str,
        message: str,
        retry_after: float = 1.0,
        *,
        outcome: str = UNKNOWN,
        request_id: str | None = None,
        expires_at: float | None = None,
        timed_out: bool = False,
    ):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
        self.outcome = outcome
        self.request_id = request_id
        self.expires_at = expires_at
        self.timed_out = timed_out


class RaftBindError(Exception):
    """The Raft port could not be listened on at start (pysyncobj would retry silently)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class RaftSettings:
    data_dir: Path
    self_address: str | None  # advertised "host:port"; None makes a read-only member
    peers: tuple[str, ...] = ()
    bind_address: str | None = None  # defaults to self_address
    password: str | None = field(default=None, repr=False)  # never in a log or traceback
    # Accepted on the Raft port but never sent with: the secret being rotated in or out.
    previous_password: str | None = field(default=None, repr=False)
    commit_timeout: float = 3.0
    # How far apart two nodes' clocks may be (NTP keeps them within milliseconds). A
    # proposer that gave up on a command waits this long past its expiry before it
    # answers "unknown", so that no leader can still take the command into its log.
    clock_skew_allowance: float = 1.0
    append_entries_period: float = 0.05
    # How long the Raft thread sleeps when idle. A one-node group has no peer
    # reply to wake it, so its commits wait one period: keep it short there.
    tick_period: float = 0.05
    raft_min_timeout: float = 0.3
    raft_max_timeout: float = 0.9
    connection_retry_time: float = 0.5
    # A link that received nothing for this long is dead (a pulled cable sends no reset).
    # Every idle link sends a ping each `link_ping_interval`, followers' links to each
    # other included, and silence is checked on every tick, not only when sending as
    # pysyncobj did, so the first vote request between two followers is never dropped
    # on a link that looked idle (why this was once 30 s; see mesh/connection.py).
    link_timeout: float = 1.5
    link_ping_interval: float = 0.25
    link_connect_timeout: float = 1.0
    leader_fallback_timeout: float = 3.0
    # A node that has heard nothing from a leader for this long (a leader: from a
    # majority) is `stale`: it cannot vouch that its replica is current, so it refuses
    # managed keys and tokens (node/auth.py) and does not claim to be caught up.
    stale_after: float = 2.0
    # Unacknowledged entry bytes the leader lets travel to one follower; a follower
    # further behind than `log_compaction_min_entries` gets a snapshot instead.
    catchup_inflight_bytes: int = 1 << 20
    log_compaction_min_entries: int = 5000
    log_compaction_min_time: float = 300.0
    rejoin_election_delay: float = 2.0
    # A leader handing over holds new commands back for at most this long (mesh/handover.py).
    hand_over_pause: float = 0.5
    # /liveness fails when no tick has completed for this long, or this many failed in a row.
    stall_after: float = 5.0
    failed_ticks: int = 3


@dataclass(frozen=True)
class PeerStatus:
    address: str
    connected: bool
    match_index: int | None
    next_index: int | None


@dataclass(frozen=True)
class RaftStatus:
    self_address: str | None
    role: str  # leader | follower | candidate | starting
    leader: str | None
    term: int
    commit_index: int
    applied_index: int
    leader_commit_index: int | None
    has_quorum: bool
    log_len: int
    ready: bool  # caught up with the leader at least once since start
    peers: tuple[PeerStatus, ...] = ()
    readonly_nodes: int = 0
    unappliable_entries: int = 0  # committed entries recorded as failed (since this start)
    refused_connections: int = 0  # frames and connections the Raft port refused
    # time.monotonic() of the last append from a leader (on a leader: of the last answer
    # that completed a majority); None before any, and for a lone node (never stale).
    last_leader_contact: float | None = None
    last_leader_contact_wall: float | None = None  # the same, as time.time()
    stale_after: float = 2.0
    solo: bool = False  # a voter without peers: its own leader, never cut off
    dead_links: int = 0  # Raft links closed because they went silent or never connected
    snapshots_sent: int = 0  # to followers too far behind (since this start)
    updated_at: float = field(default_factory=time.monotonic)

    @classmethod
    def starting(cls, self_address: str | None) -> RaftStatus:
        """Before anything is known: no leader, nothing applied, not ready."""
        return cls(
            self_address=self_address,
            role="starting",
            leader=None,
            term=0,
            commit_index=0,
            applied_index=0,
            leader_commit_index=None,
            has_quorum=False,
            log_len=0,
            ready=False,
        )

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"

    @property
    def stale(self) -> bool:
        """Cut off from the leader (or, on a leader, from a majority) for longer than
        `stale_after`, judged now: a Raft thread that stopped refreshing this makes it so."""
        if self.solo:
            return False
        contact = self.last_leader_contact
        return contact is None or time.monotonic() - contact > self.stale_after

    @property
    def cut_off(self) -> bool:
        """Reaches no majority of voters and has not heard from the leader it knew for
        `stale_after`: nothing sent now can commit. A node that has heard from no leader
        yet in this run (starting, or restarted without quorum) is not cut off: it waits."""
        return not self.has_quorum and self.last_leader_contact is not None and self.stale

    @property
    def behind_by(self) -> int | None:
        """Committed entries this node has not applied yet: the leader's commit index (as
        its last append said) minus our applied index. None while no leader is known."""
        known = self.commit_index if self.is_leader or self.solo else self.leader_commit_index
        if known is None or self.leader is None:
            return None
        return max(0, known - self.applied_index)

    @property
    def caught_up(self) -> bool:
        """Applied (within 2) what the leader has committed, and not cut off from it."""
        behind = self.behind_by
        return self.ready and not self.stale and behind is not None and behind <= 2


class _Replica(SyncObjConsumer):  # type: ignore[misc]
    """The replicated object: one entry point, `apply`, dispatching on the command."""

    def __init__(self, stream: AppliedStream, on_restored: Callable[[], None]) -> None:
        # Set before SyncObjConsumer.__init__ so they are not part of snapshots.
        self._stream = stream
        self._on_restored = on_restored
        self.unappliable = 0
        super().__init__()
        self.state = ControlState()  # the only attribute that is snapshotted

    @replicated  # type: ignore[untyped-decorator]  # pysyncobj has no type hints
    def apply(self, command: Command) -> Outcome:
        # pysyncobj bumps raftLastApplied right after this returns.
        index = self._syncObj.raftLastApplied + 1
        outcome = self.state.apply(command, index)
        if outcome.get("error") == "expired":
            # A command delivered after its proposer gave up (issue 8, fault 1), or clocks
            # further apart than the allowance: worth an operator's eye either way.
            log.warning("log entry %d refused: %s", index, outcome["message"])
        self._stream.publish(Applied(index, command, outcome))
        return outcome

    def skip(self, reason: str) -> Outcome:
        """Record a committed entry that cannot be applied: a failed outcome at its index.

        Every node reaches the same verdict on the same bytes, so every node
        records the same failure, advances `applied_index` the same way (through
        `ControlState.apply`, which fails on anything that is not a command and
        changes nothing else), and publishes it like any refused command."""
        index = self._syncObj.raftLastApplied + 1
        self.state.apply({}, index)
        self.unappliable += 1
        log.error("log entry %d cannot be applied (%s); recorded as failed", index, reason)
        outcome = fail("invalid", f"log entry {index} cannot be applied: {reason}")
        self._stream.publish(Applied(index, {}, outcome))
        return outcome

    def _deserialize(self, data: dict[str, Any]) -> None:
        super()._deserialize(data)  # replaces self.state with the snapshot's
        self._stream.publish(Applied(self.state.applied_index, None, None))
        self._on_restored()


class _TickWatch:
    """Is the Raft thread making progress? Written by each tick, read by /liveness."""

    def __init__(self) -> None:
        self.last_ok = time.monotonic()  # when the last tick completed
        self.failures = 0  # ticks failed in a row
        self.last_error = ""


class _MeshSyncObj(LeaderHandOver, PartitionRepairs, SyncObj):  # type: ignore[misc]
    """pysyncobj's SyncObj on our transport, with an apply step that cannot wedge the node,
    a leader that stamps each command it takes into its log with its clock, the
    partition repairs, and a leader hand-over that does not split the vote."""

    def __init__(
        self,
        *args: Any,
        on_unappliable: Callable[[str], Any],
        refusals: Refusals,
        catchup: CatchUp,
        liveness: Liveness,
        hand_over_pause: float,
        previous_password: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Set before SyncObj.__init__, which snapshots every attribute set after it.
        self._previous_key = raft_key(previous_password) if previous_password else None
        self._on_unappliable = on_unappliable
        self.watch = _TickWatch()
        self._init_repairs(catchup)
        self._init_hand_over(hand_over_pause)
        transport = functools.partial(
            MeshTransport, refusals=refusals, liveness=liveness, stamp=self._stamp
        )
        super().__init__(*args, transportClass=transport, **kwargs)
        # Replaces the queue SyncObj.__init__ made (same attribute, so not snapshotted).
        # Nothing is queued yet: commands are submitted only once start() has returned.
        self._SyncObj__commandsQueue = StampingQueue(
            self._SyncObj__commandsQueue, lambda: self._SyncObj__raftState == LEADER
        )

    @property
    def encryptor(self) -> Any:
        """What every connection seals and opens frames with (pysyncobj's `encryptor`):
        its key from the mesh secret, which also opens frames sealed with the previous one."""
        return keyring(self._SyncObj__encryptor, self._previous_key)

    def _SyncObj__doApplyCommand(self, command: bytes | str) -> Any:
        """Apply one committed entry: this overrides pysyncobj's `SyncObj.__doApplyCommand`
        (name-mangled, so that is its name from outside the class).

        pysyncobj's `__applyLogEntries` catches only SyncObjExceptionWrongVer, and
        does not skip even that entry: an entry that raises (unknown method id,
        bad pickle, a class our unpickler refuses, wrong arity, a code version
        this node lacks) was retried on every tick forever, and one such entry
        wedged a node for good (issue 7). Here it becomes a failed outcome."""
        try:
            if isinstance(command, str):  # sent as text: the journal keeps its UTF-8 bytes
                command = command.encode()
            kind = command[:1]
            if kind == _VERSION_KIND:
                # pysyncobj would switch its method table, or raise forever; meshgate has one
                # entry point and never writes code versions.
                reason = "a code-version entry (meshgate uses none)"
            elif len(kind) != 1 or kind not in _APPLIED_KINDS:
                reason = f"unknown entry type {kind!r}"
            else:
                return super()._SyncObj__doApplyCommand(command)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        return self._on_unappliable(reason)

    def _onTick(self, timeToWait: float = 0.0) -> None:
        """One round of the Raft thread; the outcome is stamped for /liveness."""
        try:
            self._before_tick()
            self._advance_hand_over()
            super()._onTick(timeToWait)
            self._campaign_transfer = False
        except Exception as exc:
            self.watch.failures += 1
            self.watch.last_error = f"{type(exc).__name__}: {exc}"
            raise  # pysyncobj logs it and tries again after one tick period
        self.watch.last_ok = time.monotonic()
        self.watch.failures = 0


def _restrict_unpickling() -> None:
    """Make every unpickle pysyncobj does go through `mesh.unpickler`.

    pysyncobj unpickles messages, log entries, the journal's meta file and
    snapshots with plain `pickle` (falling back to the pure-Python unpickler
    on error), through `pysyncobj.pickle.loads`/`load`; journal.py imported
    `loads` by name. A pickle is code, and what a peer holding the secret
    wrote into the log must still never run code here, so each of those
    names, in every pysyncobj module, becomes ours. Idempotent."""
    for name, module in list(sys.modules.items()):
        if name != "pysyncobj" and not name.startswith("pysyncobj."):
            continue
        for attribute in ("loads", "load"):
            theirs = getattr(module, attribute, None)
            if theirs in _PYSYNCOBJ_UNPICKLERS:
                setattr(module, attribute, _PYSYNCOBJ_UNPICKLERS[theirs])


class MeshRaft:
    """One node's membership in the Raft group."""

    def __init__(self, settings: RaftSettings, stream: AppliedStream) -> None:
        self.settings = settings
        self.stream = stream
        self._replica = _Replica(stream, self._note_restored)
        self._sync: SyncObj | None = None
        self._ready = threading.Event()
        self._status = RaftStatus.starting(settings.self_address)
        self._status_every = 0.1
        self._last_status = 0.0
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._refusals = Refusals()  # what the Raft port refused (counted on the Raft thread)
        self.restores = 0
        # The proposer's clock, which a command's expiry is read from. Tests skew it; the
        # leader's stamp always reads time.time() (see mesh/stamping.py).
        self.clock: Callable[[], float] = time.time

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Create the SyncObj. Call on the main thread (its tick thread dies with its creator)."""
        s = self.settings
        if not s.password:
            # pysyncobj's wire format is pickle: an open port runs anyone's code.
            raise ValueError("a Raft member never runs without a password (the mesh secret)")
        s.data_dir.mkdir(parents=True, exist_ok=True)
        _restrict_unpickling()  # before the SyncObj reads its journal and snapshot
        conf = SyncObjConf(
            password=s.password,
            appendEntriesUseBatch=False,
            journalFile=str(s.data_dir / "raft.journal"),
            fullDumpFile=str(s.data_dir / "raft.dump"),
            appendEntriesPeriod=s.append_entries_period,
            autoTickPeriod=s.tick_period,
            raftMinTimeout=s.raft_min_timeout,
            raftMaxTimeout=s.raft_max_timeout,
            connectionRetryTime=s.connection_retry_time,
            connectionTimeout=s.link_timeout,
            leaderFallbackTimeout=s.leader_fallback_timeout,
            commandsWaitLeader=False,
            logCompactionMinEntries=s.log_compaction_min_entries,
            logCompactionMinTime=s.log_compaction_min_time,
            logCompactionSplit=True,
            dynamicMembershipChange=True,
            bindAddress=s.bind_address,
            # Peers may be DNS names whose address changes when a pod is rescheduled;
            # the default 10-minute cache would keep dialling the old address.
            dnsCacheTime=2.0,
            dnsFailCacheTime=1.0,
            onReady=self._on_ready,
            onStateChanged=self._on_role_change,
        )
        self._sync = _MeshSyncObj(
            s.self_address,
            list(s.peers),
            conf=conf,
            consumers=[self._replica],
            on_unappliable=self._replica.skip,
            refusals=self._refusals,
            catchup=CatchUp(
                inflight_bytes=s.catchup_inflight_bytes,
                snapshot_gap=s.log_compaction_min_entries,
            ),
            liveness=Liveness(
                ping_interval=s.link_ping_interval,
                connect_timeout=s.link_connect_timeout,
            ),
            hand_over_pause=s.hand_over_pause,
            previous_password=s.previous_password,
        )
        self._fail_if_unbound()
        self._sync.addOnTickCallback(self._on_tick)
        if s.peers and s.self_address and self._sync.raftCurrentTerm > 0:
            self._calls.append(self._hold_first_election)
        elif s.self_address:
            self._calls.append(self._campaign_if_alone)

    def _fail_if_unbound(self) -> None:
        """SyncObj's constructor has made its first bind attempt; a node that cannot listen
        would look alive but never reach its peers, so it stops here instead."""
        sync = self._sync
        error = sync._SyncObj__transport.bind_error if sync is not None else None
        if sync is None or error is None:
            return
        self.stop()
        raise RaftBindError(str(self.settings.bind_address), error.strerror or str(error))

    def _hold_first_election(self) -> None:
        """A member that restarts must not call an election before the leader reaches it.

        pysyncobj has no pre-vote: a restarted node that times out first (while it
        replays its journal, before the leader's next heartbeat arrives over a fresh
        connection) campaigns with a higher term and deposes a healthy leader, which
        stalled writes for 0.4-0.9 s in rolling restarts (bench/raft_bench.py). So its
        first election deadline is pushed back; any heartbeat resets it as usual."""
        sync = self._sync
        if sync is not None:
            deadline = pysyncobj_clock() + self.settings.rejoin_election_delay
            sync._SyncObj__raftElectionDeadline = deadline  # pysyncobj has no setting for it

    def _campaign_if_alone(self) -> None:
        """A voter that is the only member elects itself on its first tick. No other node
        can win or split its vote, so waiting out the first election timeout (0.3-0.9 s)
        would only delay its start; its timeouts stay as set, and rule it once it has peers."""
        sync = self._sync
        if sync is not None and not sync.otherNodes:
            sync._SyncObj__raftElectionDeadline = 0  # as a won pre-vote does (raft_repairs.py)

    def stop(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.destroy_synchronous()

    # -- reading --------------------------------------------------------------

    @property
    def state(self) -> ControlState:
        """This node's replica. Read-only for callers; collections are copy-on-write."""
        return self._replica.state

    def status(self) -> RaftStatus:
        return self._status

    def indexes(self) -> tuple[int, int]:
        """`(commit_index, applied_index)` read together, for reports.

        Both are live (the status snapshot's commit index lags by up to a status period),
        and applied is read first: the commit index only grows, and whatever was applied
        was committed, so commit is never reported below applied."""
        sync = self._sync
        # The log position applied: no-op entries (one per new leader) are not commands,
        # so they move pysyncobj's position and not the state's.
        applied = max(self.state.applied_index, sync.raftLastApplied if sync is not None else 0)
        commit = sync.raftCommitIndex if sync is not None else self._status.commit_index
        return max(commit, applied), applied

    def leader_read_index(self) -> int | None:
        """The index a read on this node is current at, if this node is a leader that can
        vouch for it alone (Raft's ReadIndex with a lease); None otherwise.

        A leader knows every committed entry once its own term's first entry (its no-op)
        has committed. It is still the leader if a majority answered it within half the
        shortest election timeout: followers that heard from it that recently vote for
        nobody else (stickiness), so no newer leader can have committed anything since."""
        sync = self._sync
        if sync is None or sync._SyncObj__raftState != LEADER:
            return None
        commit: int = sync.raftCommitIndex
        noop = sync._SyncObj__noopIDx  # None until this node first led
        if noop is None or commit < noop:
            return None
        try:
            contact = sync.leader_contact()
        except RuntimeError:  # the Raft thread changed the peers while we read them
            return None
        lease = self.settings.raft_min_timeout / 2
        if contact is None or time.monotonic() - contact > lease:
            return None
        return commit

    def tick_alive(self) -> bool:
        return self._sync is not None and bool(self._sync.tick_thread_alive())

    def liveness_problem(self) -> str | None:
        """Why the Raft thread is not making progress, or None (cheap: reads two stamps)."""
        sync = self._sync
        if sync is None or not sync.tick_thread_alive():
            return "the Raft thread has stopped"
        watch: _TickWatch = sync.watch
        if watch.failures >= self.settings.failed_ticks:
            return f"the Raft thread failed {watch.failures} ticks in a row ({watch.last_error})"
        idle = time.monotonic() - watch.last_ok
        if idle > self.settings.stall_after:
            return f"the Raft thread has not completed a tick for {idle:.1f} s"
        return None

    # -- writing --------------------------------------------------------------

    async def submit(self, command: Command, timeout: float | None = None) -> Outcome:
        """Replicate `command`; return its outcome once applied here. Bounded in time.

        The command gets an expiry `exp` (this node's clock plus the wait), and is
        resubmitted, unchanged, after any failure until then: its request id makes a
        copy that did commit answer with the first outcome instead of applying twice.
        Past the expiry no copy is sent; an outcome still awaited is awaited until
        `exp` plus the clock-skew allowance, after which no leader can take a copy
        into its log without `ControlState.apply` refusing it. Raises `CommitError`:
        NOT_COMMITTED at once when every copy is known to be in no log that can
        commit it; UNKNOWN, at `exp` plus the allowance, otherwise."""
        loop = asyncio.get_running_loop()
        budget = min(timeout or self.settings.commit_timeout, LONGEST_WAIT)
        command = {**command, "exp": self.clock() + budget}
        deadline = loop.time() + budget  # no copy is sent after this
        settled = deadline + self.settings.clock_skew_allowance  # nor logged after this
        attempt = _Attempts(command)
        while True:
            if loop.time() >= deadline:
                raise await attempt.give_up(settled)
            future: asyncio.Future[tuple[Any, int]] = loop.create_future()
            self._replica.apply(command, callback=functools.partial(_resolve, loop, future))
            try:
                result, error = await asyncio.wait_for(future, settled - loop.time())
            except TimeoutError:
                raise attempt.timed_out() from None
            if error == FAIL_REASON.SUCCESS:
                if isinstance(result, dict) and result.get("error") == "expired":
                    attempt.note("expired", sent=False)
                    raise await attempt.give_up(settled)
                return result  # type: ignore[no-any-return]
            reason = _NOT_IN_A_LOG.get(error) or _MAYBE_IN_A_LOG.get(error) or f"error_{error}"
            attempt.note(reason, sent=error not in _NOT_IN_A_LOG)
            if error in _FINAL:
                raise await attempt.give_up(settled)
            await asyncio.sleep(min(0.02, max(0.0, deadline - loop.time())))

    async def transfer_leadership(self, within: float = 2.0) -> bool:
        """Hand leadership to the follower with the longest log; True once ANOTHER node leads.

        The Raft thread holds new commands back meanwhile, and tells the target to
        campaign once it has every entry (mesh/raft_handover.py), for at most
        `hand_over_pause`. A hand-over that did not happen is tried again after as long
        again with commands flowing, until `within` runs out, or at once when no
        follower is connected (the whole mesh stopping: none is left to take over).
        "No leader" is not success: stopping then would leave the group to another
        election."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        me = self.settings.self_address
        if not self._sync or not self._sync.otherNodes:
            return False
        asked_at = -math.inf
        while loop.time() < deadline:
            status = self._status
            leader = status.leader
            if leader is not None and leader != me:
                return True
            if not any(peer.connected for peer in status.peers):
                return False
            if leader == me and loop.time() - asked_at >= 2 * self.settings.hand_over_pause:
                asked_at = loop.time()
                try:
                    await self.on_raft_thread(self._hand_over, 0.5)
                except TimeoutError:
                    pass
            await asyncio.sleep(0.01)
        leader = self._status.leader
        return leader is not None and leader != me

    def _hand_over(self, sync: SyncObj) -> str | None:
        """Start a hand-over (on the Raft thread); the target's address, or None.

        pysyncobj does not reset a leader's election timer when it steps down, so the
        old leader could campaign on its next tick and win its seat back. Pushing our
        own deadline back lets the chosen follower win; its heartbeats reset it."""
        target: str | None = sync.start_hand_over()
        if target is not None:
            deadline = pysyncobj_clock() + self.settings.rejoin_election_delay
            sync._SyncObj__raftElectionDeadline = deadline
        return target

    async def add_voter(self, address: str) -> None:
        """Add a voter (one membership change at a time; pysyncobj refuses a second)."""
        await self._call_with_callback(lambda s, cb: s.addNodeToCluster(address, callback=cb))

    async def remove_voter(self, address: str) -> None:
        await self._call_with_callback(lambda s, cb: s.removeNodeFromCluster(address, callback=cb))

    async def _call_with_callback(
        self,
        call: Callable[[SyncObj, Callable[[Any, int], None]], None],
        timeout: float | None = None,
    ) -> Any:
        """Run a pysyncobj call that reports through a callback, on the Raft thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, int]] = loop.create_future()
        callback = functools.partial(_resolve, loop, future)
        await self.on_raft_thread(lambda sync: call(sync, callback))
        try:
            result, error = await asyncio.wait_for(future, timeout or self.settings.commit_timeout)
        except TimeoutError:
            raise CommitError(
                "timeout", "the Raft group did not answer in time", timed_out=True
            ) from None
        if error != FAIL_REASON.SUCCESS:
            reason = _NOT_IN_A_LOG.get(error) or _MAYBE_IN_A_LOG.get(error) or f"error_{error}"
            outcome = NOT_COMMITTED if error in _NOT_IN_A_LOG else UNKNOWN
            raise CommitError(reason, f"refused by raft ({reason})", outcome=outcome)
        return result

    async def on_raft_thread(self, fn: Callable[[SyncObj], T], timeout: float = 2.0) -> T:
        """Run `fn(syncobj)` on the Raft thread (internal calls belong there)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def call() -> None:
            try:
                value = fn(self._sync)
            except Exception as exc:
                loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                loop.call_soon_threadsafe(_set_result, future, value)

        self._calls.append(call)
        return await asyncio.wait_for(future, timeout)

    # -- the Raft thread --------------------------------------------------------

    def _on_ready(self) -> None:
        self._ready.set()
        self._last_status = 0.0  # read the status at the end of this tick

    def _on_role_change(self, _old: int, _new: int) -> None:
        """Read the status at the end of this tick, not up to `_status_every` later: the
        node's parts see a leader elected (or deposed) at once."""
        self._last_status = 0.0

    def _on_tick(self) -> None:
        while self._calls:
            self._calls.popleft()()
        sync = self._sync
        if sync is None:  # stop() let go of it: the last ticks run while it is destroyed
            return
        now = time.monotonic()
        if now - self._last_status >= self._status_every:
            self._last_status = now
            self._status = self._read_status(sync)

    def _read_status(self, sync: _MeshSyncObj) -> RaftStatus:
        raw = sync.getStatus()
        peers = []
        for node in sorted(sync.otherNodes, key=lambda n: n.id):
            peers.append(
                PeerStatus(
                    address=node.id,
                    connected=raw.get(f"partner_node_status_server_{node.id}") == 2,
                    match_index=raw.get(f"match_idx_server_{node.id}"),
                    next_index=raw.get(f"next_node_idx_server_{node.id}"),
                )
            )
        leader = raw["leader"]
        role = _RAFT_STATES.get(raw["state"], "unknown")
        if self.settings.self_address is None:
            role = "read-only"
        contact = sync.leader_contact()
        wall = None if contact is None else time.time() - (time.monotonic() - contact)
        return RaftStatus(
            self_address=self.settings.self_address,
            role=role,
            leader=leader.id if leader is not None else None,
            term=raw["raft_term"],
            commit_index=raw["commit_idx"],
            applied_index=raw["last_applied"],
            leader_commit_index=raw["leader_commit_idx"],
            has_quorum=bool(raw["has_quorum"]),
            log_len=raw["log_len"],
            ready=self._ready.is_set(),
            peers=tuple(peers),
            readonly_nodes=raw["readonly_nodes_count"],
            unappliable_entries=self._replica.unappliable,
            refused_connections=self._refusals.count(),
            last_leader_contact=contact,
            last_leader_contact_wall=wall,
            stale_after=self.settings.stale_after,
            solo=self.settings.self_address is not None and not sync.otherNodes,
            dead_links=sync._SyncObj__transport.dead_links,
            snapshots_sent=sync.snapshots_sent,
        )

    def _note_restored(self) -> None:
        self.restores += 1


class _Attempts:
    """What one `submit` knows about the copies of its command it has sent so far."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self.reason = "no_leader"  # the last failure seen
        self.maybe_logged = False  # some copy may be in a log that can still commit it

    def note(self, reason: str, *, sent: bool) -> None:
        self.reason = reason
        self.maybe_logged = self.maybe_logged or sent

    def timed_out(self) -> CommitError:
        """The last copy's outcome did not come by `exp` plus the allowance."""
        return self._error(
            "timeout", f"write not committed in time; its outcome is unknown (last: {self.reason})"
        )

    async def give_up(self, settled: float) -> CommitError:
        """No copy to send any more: NOT_COMMITTED now, or UNKNOWN once it is settled."""
        if not self.maybe_logged:
            return CommitError(
                self.reason,
                f"write not committed ({self.reason}); no copy reached a leader's log",
                outcome=NOT_COMMITTED,
                request_id=self.command["rid"],
            )
        await asyncio.sleep(max(0.0, settled - asyncio.get_running_loop().time()))
        return self._error(self.reason, f"write may or may not be committed ({self.reason})")

    def _error(self, reason: str, message: str) -> CommitError:
        return CommitError(
            reason,
            message,
            outcome=UNKNOWN,
            request_id=self.command["rid"],
            expires_at=self.command["exp"],
            timed_out=reason == "timeout",
        )


def _resolve(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], res: Any, err: int
) -> None:
    """pysyncobj callback (Raft thread): hand the result to the loop."""
    try:
        loop.call_soon_threadsafe(_set_result, future, (res, err))
    except RuntimeError:
        pass  # loop closed: nobody waits any more


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
