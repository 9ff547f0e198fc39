"""A leader's hand-over (`mesh/handover.py`): which follower it picks, and each step.

The rules replace pysyncobj's `transferLeadership()`, whose target voted in an
election it could not win while the leader went on appending (issue 10).
"""

from __future__ import annotations

import pytest

from mesh.handover import Candidate, HandOver, Step, choose_target


def peer(node: str, match: int, contact: float = 0.0, connected: bool = True) -> Candidate:
    return Candidate(node, match, contact, connected)


def test_the_longest_log_is_chosen_whatever_the_contact() -> None:
    assert choose_target([peer("a:1", 90, contact=9.0), peer("b:1", 100, contact=1.0)]) == "b:1"


def test_on_a_tie_the_most_recently_heard_is_chosen() -> None:
    assert choose_target([peer("a:1", 100, contact=5.0), peer("b:1", 100, contact=4.0)]) == "a:1"
    assert choose_target([peer("a:1", 100, contact=4.0), peer("b:1", 100, contact=5.0)]) == "b:1"


def test_a_follower_without_a_link_is_never_chosen() -> None:
    peers = [peer("a:1", 100, contact=9.0, connected=False), peer("b:1", 10, contact=1.0)]
    assert choose_target(peers) == "b:1"


def test_no_reachable_follower_means_no_hand_over() -> None:
    assert choose_target([]) is None
    assert choose_target([peer("a:1", 100, connected=False)]) is None


def step(
    hand_over: HandOver,
    now: float = 1.0,
    *,
    leading: bool = True,
    other_leader: bool = False,
    target_match: int = 100,
    last_index: int = 100,
) -> Step:
    return hand_over.next_step(
        now,
        leading=leading,
        other_leader=other_leader,
        target_match=target_match,
        last_index=last_index,
        resend_after=0.3,
    )


def test_the_target_is_told_to_campaign_only_once_it_has_every_entry() -> None:
    hand_over = HandOver("b:1", until=2.0)
    assert step(hand_over, target_match=99) is Step.WAIT
    assert step(hand_over, target_match=100) is Step.SEND


def test_timeout_now_is_sent_once_then_again_only_after_the_resend_time() -> None:
    hand_over = HandOver("b:1", until=5.0, sent_at=1.0)
    assert step(hand_over, now=1.2) is Step.WAIT
    assert step(hand_over, now=1.3) is Step.SEND


def test_while_an_election_is_under_way_nothing_is_sent() -> None:
    hand_over = HandOver("b:1", until=2.0)
    assert step(hand_over, leading=False) is Step.WAIT


def test_another_leader_ends_the_hand_over() -> None:
    hand_over = HandOver("b:1", until=2.0)
    assert step(hand_over, leading=False, other_leader=True) is Step.DONE
    # even past the pause: the held commands go to the new leader either way
    assert step(hand_over, now=3.0, leading=False, other_leader=True) is Step.DONE


@pytest.mark.parametrize("leading", [True, False])
def test_the_pause_is_bounded(leading: bool) -> None:
    hand_over = HandOver("b:1", until=2.0)
    assert step(hand_over, now=2.0, leading=leading, target_match=50) is Step.GIVE_UP
