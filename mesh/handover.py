"""Pure rules for a leader's hand-over (Raft's leadership transfer, thesis §3.10).

The leader picks the follower with the longest log, holds new commands back so that
its log stops growing, waits until that follower has every entry, and only then tells
it to campaign at once (`timeout_now`). The follower's vote request then carries a log
as long as anyone's, so every voter can grant it, and the vote cannot split. The
wiring to pysyncobj is `LeaderHandOver` in mesh/raft_handover.py; these are its
decisions, free of pysyncobj so that they can be unit-tested.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A follower as the leader sees it."""

    node: str  # its Raft address
    match: int  # the last entry the leader knows it holds
    contact: float  # when it last answered the leader (any clock, compared only)
    connected: bool


def choose_target(candidates: Iterable[Candidate]) -> str | None:
    """The follower to hand leadership to: the longest log (highest match index); on a tie,
    the one heard from most recently; a follower the leader has no link to, never."""
    reachable = [c for c in candidates if c.connected]
    if not reachable:
        return None
    return max(reachable, key=lambda c: (c.match, c.contact, c.node)).node


class Step(enum.Enum):
    WAIT = "wait"  # keep holding commands back
    SEND = "send"  # the target has every entry: tell it to campaign now
    DONE = "done"  # another node leads: let the held commands go (to it)
    GIVE_UP = "give_up"  # the pause ran out: let the held commands go, wherever they may


@dataclass
class HandOver:
    """One hand-over in progress: while it exists, the leader appends nothing new."""

    target: str
    until: float  # when to give up and resume (the pause is bounded)
    sent_at: float | None = None  # when `timeout_now` went to the target

    def next_step(
        self,
        now: float,
        *,
        leading: bool,
        other_leader: bool,
        target_match: int,
        last_index: int,
        resend_after: float,
    ) -> Step:
        """What to do now. `leading`: we are still leader; `other_leader`: we follow a
        leader now (the hand-over happened); `target_match` against our `last_index`:
        whether the target has every entry. A `timeout_now` that did not make the target
        campaign (lost with a link, say) is sent again after `resend_after`."""
        if other_leader:
            return Step.DONE
        if now >= self.until:
            return Step.GIVE_UP
        if not leading or target_match < last_index:
            return Step.WAIT  # an election is under way, or the target is catching up
        if self.sent_at is None or now - self.sent_at >= resend_after:
            return Step.SEND
        return Step.WAIT
