"""The simulator's reply plan: where a reply stops and why, and per-request markers."""

from __future__ import annotations

import grpc

from node.grpc_echo.config import Faults
from node.grpc_echo.plan import common_prefix, plan_reply, request_faults


def test_a_reply_stops_at_length_stop_token_or_eos() -> None:
    plan = plan_reply([5, 6, 7], max_new_tokens=2, stop_token_ids=(), eos_token_ids=[9])
    assert (plan.token_ids, plan.finish_reason, plan.matched_token_id) == ([5, 6], "length", None)
    plan = plan_reply([5, 6, 7], max_new_tokens=9, stop_token_ids={6}, eos_token_ids=[9])
    assert (plan.token_ids, plan.finish_reason, plan.matched_token_id) == ([5], "stop", 6)
    kept = plan_reply(
        [5, 6], max_new_tokens=9, stop_token_ids={6}, eos_token_ids=[], no_stop_trim=True
    )
    assert kept.token_ids == [5, 6]
    run_out = plan_reply([5], max_new_tokens=9, stop_token_ids=(), eos_token_ids=[9, 10])
    assert (run_out.finish_reason, run_out.matched_token_id) == ("stop", 9)
    eos = plan_reply([5, 9, 6], max_new_tokens=9, stop_token_ids=(), eos_token_ids=[9])
    assert eos.token_ids == [5]
    ignored = plan_reply(
        [5, 9, 6], max_new_tokens=9, stop_token_ids=(), eos_token_ids=[9], ignore_eos=True
    )
    assert ignored.token_ids == [5, 9, 6]


def test_a_stop_string_ends_the_reply_at_the_token_that_completes_it() -> None:
    text = {5: "ab", 6: "c", 7: "d"}

    def decode(ids: list[int]) -> str:
        return "".join(text[i] for i in ids)

    plan = plan_reply(
        [5, 6, 7], max_new_tokens=9, stop_token_ids=(), eos_token_ids=[], stop=["bc"], decode=decode
    )
    assert (plan.token_ids, plan.finish_reason, plan.matched_stop_str) == ([5, 6], "stop", "bc")


def test_markers_override_the_worker_faults() -> None:
    base = Faults(cut_after=5)
    faults = request_faults("a [[fail:unavailable]] [[cut:2]] [[reply:hi ]] b", base, None)
    assert faults.fail_status == grpc.StatusCode.UNAVAILABLE
    assert (faults.cut_after, faults.reply_text, faults.hang) == (2, "hi ", False)
    plain = request_faults("nothing here", base, "scripted")
    assert (plain.cut_after, plain.reply_text, plain.fail_status) == (5, "scripted", None)
    assert request_faults("[[hang]]", Faults(), None).hang
    assert request_faults("[[fail:NOPE]]", Faults(), None).fail_status == grpc.StatusCode.INTERNAL


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
