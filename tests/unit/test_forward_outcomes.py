"""The forwarder's retry loop tells each kind of attempt outcome apart: a failure phrase
and a retryable answer are retried, any other answer is the client's at once; the last
retryable answer is returned when no attempt does better, a 503 when none answered."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web

from node.errors import ApiError
from node.grpcproxy.forward import Retry
from node.metrics import Metrics
from node.pipeline.request import InferenceRequest
from node.proxy.forward import Forwarder, Outcome, RetrySettings, _Retryable
from node.proxy.relay import CoalescedStream
from node.proxy.worker_http import WorkerHttp
from node.workers.worker import Worker

ATTEMPTS = 3


def forwarder() -> Forwarder:
    no_wait = RetrySettings(max_attempts=ATTEMPTS, initial_backoff=0.0)
    return Forwarder(WorkerHttp(), no_wait, 5.0, Metrics("n"))


def request() -> InferenceRequest:
    return InferenceRequest(
        cast(Any, None), "/v1/chat/completions", cast(Any, None), b"{}", {}, "m", False, "rq", 0.0
    )


def retried(outcomes: list[Outcome | None]) -> tuple[web.StreamResponse, int]:
    """What the loop returns for these attempts' outcomes, and how many it made."""
    made: list[int] = []

    async def once(attempt: int) -> Outcome | None:
        made.append(attempt)
        return outcomes[attempt - 1]

    answer = asyncio.run(forwarder()._retrying(request(), once))
    return answer, len(made)


# Answers of every type an attempt returns: the client's at once, never retried.
ANSWERS = {
    "whole": lambda: web.Response(status=200, body=b"{}"),
    "a 4xx relayed": lambda: web.Response(status=400, body=b"{}"),
    "json": lambda: web.json_response({}),
    "a stream": lambda: web.StreamResponse(),
    "a coalesced stream": lambda: CoalescedStream(),
}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_an_answer_after_failures_is_returned_at_once(kind: str) -> None:
    answer = ANSWERS[kind]()
    failures: list[Outcome | None] = ["worker w1 did not answer", _Retryable(503, b"{}", None, {})]
    for before in range(len(failures) + 1):  # after none, one, or each kind of failure
        got, made = retried([*failures[:before], answer, "never asked for"])
        assert got is answer and made == before + 1


def test_the_last_retryable_answer_is_returned_when_none_does_better() -> None:
    last = _Retryable(429, b'{"late": 1}', "application/json", {})
    got, made = retried([_Retryable(503, b"{}", None, {}), "worker w1 did not answer", last])
    assert got is last and made == ATTEMPTS


@pytest.mark.parametrize("outcomes", [["a", "b", "c"], [None], ["a", None]])
def test_no_answer_is_a_503_with_retry_after(outcomes: list[Outcome | None]) -> None:
    with pytest.raises(ApiError) as refused:
        retried(outcomes)
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}


def test_an_engine_s_retryable_refusal_is_retried_as_an_http_one() -> None:
    engine_worker = cast(
        Worker,
        SimpleNamespace(
            id="g1",
            connection_mode="grpc",
            load=0,
            breaker=SimpleNamespace(on_attempt=lambda: None, settle=lambda _: None),
        ),
    )
    forward = forwarder()

    async def attempt(*_: Any) -> tuple[Outcome | Retry, bool]:
        return Retry(503, b'{"busy": 1}'), False

    forward.engine.attempt = attempt  # type: ignore[method-assign]
    ex = request()
    ex.headers["X-RateLimit-Remaining"] = "7"
    outcome = asyncio.run(forward._engine_attempt(ex, engine_worker))
    assert type(outcome) is _Retryable and outcome.status == 503
    assert outcome.body == b'{"busy": 1}'
    # Returned when no worker does better: a worker's answer, as every other one.
    assert dict(outcome.headers) == {
        "Content-Type": "application/json",
        "X-Request-Id": "rq",
        "X-Meshgate-Worker": "g1",
        "X-RateLimit-Remaining": "7",
    }
