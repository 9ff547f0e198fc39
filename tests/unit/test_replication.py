"""Log replication decisions (`mesh/replication.py`): what a follower keeps, what a leader sends.

Each test is one of the ways pysyncobj 0.3.17 went wrong under partitions
(issue 8), replayed against the pure rules that replace its own.
"""

from __future__ import annotations

from mesh.replication import (
    PROBE,
    REPLICATE,
    SNAPSHOT,
    Accept,
    Progress,
    Reject,
    grant_pre_vote,
    match_entries,
)


class Log:
    """A follower's log: terms by index, from `first`."""

    def __init__(self, terms: list[int], first: int = 1) -> None:
        self.first = first
        self.terms = terms

    @property
    def last(self) -> int:
        return self.first + len(self.terms) - 1

    def term_at(self, index: int) -> int | None:
        if self.first <= index <= self.last:
            return self.terms[index - self.first]
        return None

    def match(self, prev: int, prev_term: int, entries: list[tuple[int, int]], commit: int = 0):
        return match_entries(
            self.term_at,
            self.first,
            self.last,
            commit,
            prev,
            prev_term,
            [(b"x", index, term) for index, term in entries],
        )


def test_a_resent_batch_the_follower_already_holds_truncates_nothing() -> None:
    # pysyncobj deleted everything after `prev` and re-appended the batch: an old or
    # repeated append cut off applied entries (the CRITICAL "truncating" lines).
    log = Log([0, 1, 1, 1, 1, 1])  # indexes 1..6
    verdict = log.match(prev=2, prev_term=1, entries=[(3, 1), (4, 1)])
    assert verdict == Accept(keep_from=2, truncate_from=None, last_new=4)


def test_only_the_first_real_conflict_and_what_follows_is_replaced() -> None:
    log = Log([0, 1, 1, 2, 2])  # the old leader's term-2 entries at 4 and 5
    verdict = log.match(prev=2, prev_term=1, entries=[(3, 1), (4, 3), (5, 3), (6, 3)])
    assert verdict == Accept(keep_from=1, truncate_from=4, last_new=6)


def test_a_gap_asks_for_the_entry_after_our_last() -> None:
    log = Log([0, 1, 1])
    assert log.match(prev=10, prev_term=1, entries=[]) == Reject(hint=4)


def test_a_diverged_entry_sends_the_leader_back_to_our_commit_index_in_one_step() -> None:
    # pysyncobj answered `prev` itself: the leader walked back one entry per round trip.
    log = Log([0, 1, 1, 1] + [2] * 500)  # 500 uncommitted entries of a deposed leader
    assert log.match(prev=400, prev_term=3, entries=[], commit=4) == Reject(hint=5)


def test_entries_before_a_compacted_log_count_as_matching() -> None:
    log = Log([5, 5, 6], first=100)  # a snapshot up to 101
    entries = [(i, 5) for i in range(91, 102)] + [(102, 6), (103, 6)]
    verdict = log.match(prev=90, prev_term=4, entries=entries)
    assert verdict == Accept(keep_from=12, truncate_from=None, last_new=103)


def test_in_probe_mode_only_the_answer_to_the_probe_in_flight_moves_the_next_index() -> None:
    progress = Progress(next=1001, match=0)
    progress.sent(1000, 0, now=0.0)
    assert not progress.may_probe(now=0.01, period=0.05)  # one probe at a time
    assert progress.on_reject(prev=1000, hint=301)
    assert progress.next == 301 and progress.may_probe(now=0.01, period=0.05)
    # A late answer to an older append (pysyncobj rewound on these, again and again).
    assert not progress.on_reject(prev=1000, hint=301)
    assert not progress.on_reject(prev=700, hint=250)
    assert progress.next == 301 and progress.mode == PROBE


def test_success_switches_to_pipelining_with_bounded_bytes_in_flight() -> None:
    progress = Progress(next=301, match=0)
    progress.sent(300, 0, now=0.0)
    progress.on_success(301)
    assert (progress.mode, progress.match, progress.next) == (REPLICATE, 300, 301)
    cap = 1000
    sent = 0
    while progress.can_pipeline(cap):
        progress.sent(progress.next + 9, 400, now=0.1)
        sent += 1
    assert sent == 3 and progress.inflight_bytes == 1200 and progress.next == 331
    progress.on_success(321)  # the first two batches arrived
    assert progress.inflight_bytes == 400 and progress.can_pipeline(cap)


def test_in_replicate_mode_a_stale_rejection_is_ignored_and_a_real_one_probes() -> None:
    progress = Progress(next=101, match=100, mode=REPLICATE)
    progress.sent(150, 500, now=0.0)
    assert not progress.on_reject(prev=90, hint=80)  # older than what it acknowledged
    assert progress.mode == REPLICATE and progress.next == 151
    assert progress.on_reject(prev=120, hint=111)  # it lost what was in flight
    assert (progress.mode, progress.next, progress.inflight_bytes) == (PROBE, 111, 0)


def test_a_follower_that_lost_its_journal_tail_is_believed_in_probe_mode() -> None:
    progress = Progress(next=501, match=500)
    progress.probe()
    progress.sent(500, 0, now=0.0)
    assert progress.on_reject(prev=500, hint=200)
    assert (progress.next, progress.match) == (200, 199)


def test_the_initial_entry_is_never_asked_for() -> None:
    progress = Progress(next=3, match=0)
    assert progress.on_reject(prev=2, hint=1)
    assert progress.next == 2


def test_snapshot_mode_waits_for_the_follower_to_load_it() -> None:
    progress = Progress(next=50, match=0)
    progress.to_snapshot(now=0.5)
    assert not progress.on_reject(prev=49, hint=10)
    progress.on_success(60)  # an append sent before: noted, but the plan stands
    assert (progress.mode, progress.match) == (SNAPSHOT, 59)
    progress.snapshot_sent(9000, now=1.0)
    assert progress.mode == SNAPSHOT and progress.next == 9001
    progress.on_success(9001)
    assert (progress.mode, progress.match, progress.next) == (REPLICATE, 9000, 9001)


def test_a_new_link_probes_from_what_was_acknowledged() -> None:
    progress = Progress(next=101, match=90, mode=REPLICATE)
    progress.sent(120, 800, now=0.0)
    progress.probe()  # the link closed: what was in flight is lost
    assert (progress.mode, progress.next, progress.inflight_bytes) == (PROBE, 121, 0)
    assert progress.gap(200) == 110


def test_pre_vote_needs_a_later_term_an_up_to_date_log_and_no_live_leader() -> None:
    def ask(**change: object) -> bool:
        args: dict[str, object] = {
            "asked_term": 6,
            "current_term": 5,
            "candidate_last": (5, 100),
            "own_last": (5, 100),
            "leader_is_live": False,
        }
        return grant_pre_vote(**(args | change))  # type: ignore[arg-type]

    assert ask()
    assert not ask(leader_is_live=True)  # stickiness: a rejoining node deposes nobody
    assert not ask(asked_term=5)
    assert not ask(candidate_last=(5, 99))
    assert not ask(candidate_last=(4, 500))
    assert ask(candidate_last=(6, 1))
