"""An engine's gRPC status -> the HTTP status, the retry decision and the client's words."""

from __future__ import annotations

import grpc
import pytest

from node.grpcproxy.status import client_message, failure_of


@pytest.mark.parametrize(
    ("code", "status", "retry"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, True),
        (grpc.StatusCode.UNAVAILABLE, 503, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, True),
        (grpc.StatusCode.INTERNAL, 502, True),
        (None, 502, True),
    ],
)
def test_status_and_retry(code: grpc.StatusCode | None, status: int, retry: bool) -> None:
    failure = failure_of(code)
    assert (failure.status, failure.retry) == (status, retry)


def test_only_the_requests_own_faults_show_the_engines_words() -> None:
    said = client_message(grpc.StatusCode.INVALID_ARGUMENT, "token 9 out of range")
    assert "token 9 out of range" in said and "INVALID_ARGUMENT" in said
    hidden = client_message(grpc.StatusCode.INTERNAL, "at /srv/engine/sched.py:42")
    assert "/srv" not in hidden and "INTERNAL" in hidden
