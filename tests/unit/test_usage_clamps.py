"""What a worker claims as usage is clamped, per request and in the replicated totals."""

from __future__ import annotations

import orjson
import pytest

from mesh.commands import make
from mesh.state import USAGE_DELTA_MAX, USAGE_TOTAL_MAX, ControlState
from node.limits.usage import MAX_TOKENS_PER_REQUEST, TokenMeter


@pytest.mark.parametrize(
    ("usage", "counted"),
    [
        (b'{"total_tokens": 12}', 12),
        (b'{"total_tokens": 18446744073709551615}', MAX_TOKENS_PER_REQUEST),
        (b'{"total_tokens": 1000000000000000000000000000000}', MAX_TOKENS_PER_REQUEST),
        (b'{"total_tokens": -5}', 0),
        (b'{"total_tokens": 7.9}', 7),
        (b'{"total_tokens": "many"}', 0),
        (b'{"total_tokens": true}', 0),
        (b'{"prompt_tokens": -100, "completion_tokens": 9}', 9),
        (
            b'{"input_tokens": 18446744073709551615, "output_tokens": 18446744073709551615}',
            MAX_TOKENS_PER_REQUEST,
        ),
        (b'{"total_tokens": 1e400}', 0),  # not even JSON orjson reads: nothing counted
    ],
)
def test_a_worker_s_claim_is_clamped_per_request(usage: bytes, counted: int) -> None:
    whole = TokenMeter()
    whole.from_body(b'{"usage": ' + usage + b"}")
    streamed = TokenMeter()
    streamed.feed(b'data: {"choices": []}\n\ndata: {"usage": ' + usage + b"}\n\n")
    assert whole.tokens == streamed.tokens == counted


def test_usage_flush_clamps_absurd_deltas_and_saturates_totals() -> None:
    state = ControlState()
    assert state.apply(make("tenant.create", {"name": "s"}, by="t"), 1)["ok"]
    huge = {"tenant:s": {"requests": 1, "tokens": 2**70, "day": "2026-01-01", "last_access": 1.0}}
    outcome = state.apply(make("usage.flush", {"deltas": huge}, by="t"), 2)
    assert outcome["ok"] and outcome["value"]["clamped"] == 1
    assert state.usage["tenant:s"]["tokens_used"] == USAGE_DELTA_MAX
    for index in range(3, 13):
        state.apply(make("usage.flush", {"deltas": huge}, by="t"), index)
    assert state.usage["tenant:s"]["tokens_used"] == min(11 * USAGE_DELTA_MAX, USAGE_TOTAL_MAX)
    old = {**state.usage["tenant:s"], "tokens_used": 2**80}  # written by an old version
    state.usage = {"tenant:s": old}
    state.apply(make("usage.flush", {"deltas": huge}, by="t"), 20)
    assert state.usage["tenant:s"]["tokens_used"] == USAGE_TOTAL_MAX
    orjson.dumps(state.usage)  # a listing can always be written out
