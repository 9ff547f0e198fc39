"""Log replication decisions, apart from pysyncobj: what a follower keeps, what a leader sends.

pysyncobj's replication (0.3.17) went wrong in three ways under partitions
(issue 8), all fixed by the rules here, which `mesh/raft.py` plugs into its
`SyncObj` subclass:

1. **A follower truncated entries it already had.** On every append whose
   previous entry matched, it deleted everything after that entry and
   re-appended what the message carried, even when its entries matched the
   leader's: a re-sent or reordered batch cut off applied entries (the
   `CRITICAL truncating already-applied log entries` lines, 30-250 a run).
   `match_entries` follows the Raft paper instead: skip entries it already
   holds with the same term, truncate only at the first real conflict.
2. **Any late answer rewound the leader.** A follower's "I lack that entry"
   reset the leader's next index to whatever it said, however old the answer,
   and the leader then re-sent the whole log tail from there in one tick. An
   answer to an append sent before the tail was re-sent rewound it again, so a
   node far behind got the tail over and over (536-922 MB on one link) and
   never caught up. `Progress` keeps etcd's three states: *probe* (one append
   in flight until the follower answers it; only the answer to that append
   moves the next index), *replicate* (pipelined appends, bounded in bytes in
   flight; an answer older than what the follower has acknowledged is
   ignored), and *snapshot*.
3. **A diverged follower walked back one entry per round trip.** A follower
   whose entry at the previous index has another term now answers with the
   first index after its commit index, which every leader holds unchanged
   (committed entries are never rewritten), so one round trip finds the point
   to resume from.

Everything here is pure: no clock (times are passed in), no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"
# Index 1 is the empty entry every pysyncobj log starts with, the same on every node:
# no leader ever needs to send it.
FIRST_INDEX = 2

# An entry as pysyncobj keeps it: (command bytes, index, term).
Entry = tuple[bytes, int, int]


@dataclass(frozen=True)
class CatchUp:
    """How a leader brings a follower up to date."""

    inflight_bytes: int = 1 << 20  # unacknowledged entry bytes per follower, at most
    snapshot_gap: int = 5000  # further behind than this (in entries): send a snapshot
    snapshot_gap_every: float = 30.0  # compact for a lagging follower at most this often
    snapshot_answer_timeout: float = 10.0  # no answer to a sent snapshot: probe again


# -- the follower ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reject:
    """The previous entry is missing or differs: the leader should resume from `hint`."""

    hint: int


@dataclass(frozen=True)
class Accept:
    """Append `entries[keep_from:]` after deleting the log from `truncate_from` (if set).

    `last_new` is the last index known to match the leader (the previous index plus the
    entries of this message): the commit index may move up to it, never past it."""

    keep_from: int
    truncate_from: int | None
    last_new: int


def match_entries(
    term_at: Callable[[int], int | None],
    first: int,
    last: int,
    commit: int,
    prev: int,
    prev_term: int,
    entries: Sequence[Entry],
) -> Accept | Reject:
    """What a follower does with an append (Raft, section 5.3).

    `term_at(i)` is the term of this follower's entry i (None if absent); its log holds
    `first..last`, entries before `first` were compacted into a snapshot, and the
    entries up to `commit` are committed."""
    if prev > last:
        return Reject(hint=last + 1)  # a gap: resume right after our last entry
    if prev >= first and term_at(prev) != prev_term:
        # Diverged. Everything up to our commit index is committed, hence the same on
        # every leader: resume there, one round trip instead of one per entry.
        return Reject(hint=max(FIRST_INDEX, min(prev, commit + 1)))
    # prev < first: compacted here, so committed, so it matches.
    keep_from = 0
    truncate_from = None
    for position, (_, index, term) in enumerate(entries):
        if index < first or (index <= last and term_at(index) == term):
            keep_from = position + 1  # already ours: keep it, do not rewrite it
            continue
        if index <= last:
            truncate_from = index  # the first conflict: it and everything after it go
        break
    last_new = entries[-1][1] if entries else prev
    return Accept(keep_from=keep_from, truncate_from=truncate_from, last_new=last_new)


# -- the leader --------------------------------------------------------------------------------


@dataclass
class Progress:
    """What a leader knows of one follower's log, and what it has sent it.

    `next`: the next index to send; `match`: the highest index known to be replicated.
    Only `on_success`/`on_reject`, fed the follower's answers in order, move them back;
    sending moves `next` forward (in replicate mode)."""

    next: int
    match: int
    mode: str = PROBE
    probe_sent_at: float | None = None  # the append in flight in probe mode
    inflight: deque[tuple[int, int]] = field(default_factory=deque)  # (last index, bytes)
    inflight_bytes: int = 0
    last_sent: float = float("-inf")
    sent_commit: int = 0  # the commit index the follower was last told
    snapshot_since: float = 0.0  # when snapshot mode began
    snapshot_done_at: float | None = None  # the snapshot's last chunk went out

    def probe(self, next_index: int | None = None) -> None:
        """Back to probing (a new link, a lost message): one append at a time."""
        self.mode = PROBE
        if next_index is not None:
            self.next = next_index
        self.next = max(self.next, self.match + 1)
        self.probe_sent_at = None
        self.snapshot_done_at = None
        self.inflight.clear()
        self.inflight_bytes = 0

    def may_probe(self, now: float, period: float) -> bool:
        """In probe mode: no append in flight, or the one in flight is a period old."""
        return self.probe_sent_at is None or now - self.probe_sent_at >= period

    def can_pipeline(self, cap: int) -> bool:
        return self.mode == REPLICATE and self.inflight_bytes < cap

    def sent(self, last_index: int, size: int, now: float) -> None:
        """An append carrying entries up to `last_index` (`size` bytes) went out."""
        self.last_sent = now
        if self.mode == PROBE:
            self.probe_sent_at = now
            return
        if last_index >= self.next:
            self.inflight.append((last_index, size))
            self.inflight_bytes += size
            self.next = last_index + 1

    def on_success(self, next_index: int) -> None:
        """The follower holds the leader's log up to `next_index - 1`."""
        index = next_index - 1
        if index > self.match:
            self.match = index
        if self.mode == SNAPSHOT and self.snapshot_done_at is None:
            # An answer to an append sent before the snapshot was chosen: keep to the plan.
            self.next = max(self.next, self.match + 1)
            return
        if self.mode != REPLICATE:
            self.mode = REPLICATE
            self.next = self.match + 1
            self.probe_sent_at = self.snapshot_done_at = None
        self.next = max(self.next, self.match + 1)
        while self.inflight and self.inflight[0][0] <= self.match:
            self.inflight_bytes -= self.inflight.popleft()[1]

    def on_reject(self, prev: int | None, hint: int) -> bool:
        """The follower lacks the entry at `prev` (or it differs); it suggests `hint`.

        Returns False when the answer is stale and changes nothing: in replicate mode an
        answer about an index the follower has since acknowledged, in probe mode an
        answer to any append but the one in flight, in snapshot mode any."""
        if self.mode == SNAPSHOT:
            return False
        if prev is None:  # a follower that does not say which append it answers
            if hint <= self.match:
                return False
            self.probe(max(FIRST_INDEX, hint))
            return True
        if self.mode == REPLICATE:
            if prev <= self.match:
                return False
            self.probe(max(self.match + 1, min(hint, prev)))
            return True
        if prev != self.next - 1:
            return False
        # The answer to the probe in flight is the truth, even below what we thought was
        # matched (a follower that lost its journal's tail).
        self.next = max(FIRST_INDEX, min(hint, prev))
        self.match = min(self.match, self.next - 1)
        self.probe_sent_at = None
        return True

    def to_snapshot(self, now: float) -> None:
        self.mode = SNAPSHOT
        self.snapshot_since = now
        self.probe_sent_at = self.snapshot_done_at = None
        self.inflight.clear()
        self.inflight_bytes = 0

    def snapshot_sent(self, snapshot_index: int, now: float) -> None:
        """The last chunk went out: the follower answers once it has loaded it."""
        self.snapshot_done_at = now
        self.last_sent = now
        self.next = snapshot_index + 1

    def gap(self, last_index: int) -> int:
        """Entries the follower still lacks, as far as the leader knows."""
        return max(0, last_index - self.match)


# -- elections ---------------------------------------------------------------------------------


def grant_pre_vote(
    asked_term: int,
    current_term: int,
    candidate_last: tuple[int, int],
    own_last: tuple[int, int],
    leader_is_live: bool,
) -> bool:
    """Would this node vote for a candidate asking for `asked_term`? (Raft thesis 9.6.)

    `candidate_last` and `own_last` are (term, index) of the last log entry: the
    candidate's log must be at least as up to date. A node that hears from a live leader
    says no (leader stickiness): a node that rejoins after a partition must not depose
    it. Answering changes nothing on this node, so asking costs no term."""
    return asked_term > current_term and candidate_last >= own_last and not leader_is_live
