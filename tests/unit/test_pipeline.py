"""Unit tests of the inference pipeline's stages (`node/pipeline/`), in process.

The forwarder is replaced by a stand-in that records what reached it, so these
tests see what each stage decided and what `Pipeline.serve` counted, without
a worker. pytest-asyncio is not installed: each test drives its own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any
from unittest import mock

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from mesh.state import ControlState
from node.auth import Principal
from node.client_gone import final_status
from node.errors import ApiError
from node.limits.admission import Admission
from node.limits.quotas import QuotaEngine
from node.limits.ratelimit import RateLimiter
from node.limits.usage import UsageBook
from node.metrics import Metrics
from node.pipeline.authorize import allowed_workers, served_models
from node.pipeline.pipeline import Pipeline
from node.pipeline.request import InferenceRequest, Target
from node.pipeline.settle import with_stream_usage
from node.routing import POLICY_NAMES, make_policy
from node.routing.base import Policy
from node.routing.selector import PolicySelector
from node.workers.pool import WorkerPool

ROUTE = "/v1/chat/completions"
USER = Principal("u1", "user one", "user", "api_key", tenant="shop")
BODY = {"model": "m", "messages": [{"role": "user", "content": "the prompt"}]}
WORKERS: Any = (SimpleNamespace(id="w1", model_id="m"), SimpleNamespace(id="w2", model_id="m"))


class StandInForwarder:
    """Records each request and its policy, then does what the test told it to."""

    def __init__(self, act: Callable[[InferenceRequest], Awaitable[web.StreamResponse]]) -> None:
        self.act = act
        self.seen: list[tuple[InferenceRequest, Policy]] = []

    async def forward(
        self, request: InferenceRequest, policy: Policy, pair: object = None
    ) -> web.StreamResponse:
        self.seen.append((request, policy))
        return await self.act(request)


async def answer_ok(_: InferenceRequest) -> web.StreamResponse:
    return web.Response(status=200)


def pipeline_with(
    forwarder: StandInForwarder, policy: str = "round_robin", admission: Admission | None = None
) -> Pipeline:
    async def commit(args: dict[str, Any], request_id: str) -> None:
        return None

    return Pipeline(
        pool=mock.create_autospec(WorkerPool, instance=True),
        selector=PolicySelector(policy),
        forwarder=forwarder,  # type: ignore[arg-type]
        ratelimiter=RateLimiter("n1", None, lambda: 1),
        quotas=QuotaEngine("n1", None, lambda: 1),
        admission=admission or Admission(0, 0, 0.0),
        usage=UsageBook(commit),
        metrics=Metrics("n1"),
        state=ControlState,
        model_label=lambda model: model or "none",
        request_id_headers=("x-request-id",),
    )


def http_request(open_connection: bool = True) -> web.Request:
    transport = mock.Mock(is_closing=lambda: not open_connection)
    return make_mocked_request("POST", ROUTE, headers={"x-request-id": "r1"}, transport=transport)


def serve(pipeline: Pipeline, http: web.Request, body: dict[str, Any] = BODY) -> Any:
    raw = orjson.dumps(body)

    async def enter(started: float) -> InferenceRequest:
        return pipeline.request(
            http, USER, ROUTE, raw, orjson.loads(raw), started, Target(candidates=WORKERS)
        )

    return pipeline.serve(http, ROUTE, enter)


def counted(pipeline: Pipeline, status: int, model: str = "m") -> float | None:
    labels = {"node": "n1", "route": ROUTE, "model": model, "status": str(status)}
    return pipeline.metrics.registry.get_sample_value("meshgate_requests_total", labels)


# -- routing facts: the prompt only for policies that read it -------------------------------


def test_every_policy_declares_whether_it_reads_the_prompt() -> None:
    declared = {name: make_policy(name).needs_prompt for name in POLICY_NAMES}
    assert all(isinstance(needs, bool) for needs in declared.values())
    assert {name for name, needs in declared.items() if needs} == {"cache_aware", "prefix_hash"}


@pytest.mark.parametrize(("policy", "prompt"), [("round_robin", ""), ("prefix_hash", "the prompt")])
def test_the_prompt_is_extracted_only_for_a_policy_that_needs_it(policy: str, prompt: str) -> None:
    forwarder = StandInForwarder(answer_ok)
    pipeline = pipeline_with(forwarder, policy)
    asyncio.run(serve(pipeline, http_request()))
    request, chosen = forwarder.seen[0]
    assert chosen.name == policy
    assert request.facts.prompt == prompt
    assert request.request_id == "r1" and request.candidates == WORKERS


def test_the_body_reaches_the_forwarder_as_the_client_sent_it() -> None:
    forwarder = StandInForwarder(answer_ok)
    raw = b'{"model":  "m",\n "messages": [], "extra": 1.50}'
    http = http_request()
    pipeline = pipeline_with(forwarder)

    async def enter(started: float) -> InferenceRequest:
        return pipeline.request(http, USER, ROUTE, raw, orjson.loads(raw), started)

    pipeline.pool.serving.return_value = WORKERS  # type: ignore[attr-defined]
    asyncio.run(pipeline.serve(http, ROUTE, enter))
    assert forwarder.seen[0][0].body is raw


# -- metrics: one place, every outcome ------------------------------------------------------


def test_an_answer_is_counted_once_under_its_route_and_model() -> None:
    pipeline = pipeline_with(StandInForwarder(answer_ok))
    response = asyncio.run(serve(pipeline, http_request()))
    assert response.status == 200
    assert counted(pipeline, 200) == 1.0
    assert pipeline.admission.in_flight == 0


def test_an_error_is_counted_with_its_status() -> None:
    async def unavailable(_: InferenceRequest) -> web.StreamResponse:
        raise ApiError(503, "no healthy worker")

    pipeline = pipeline_with(StandInForwarder(unavailable))
    with pytest.raises(ApiError):
        asyncio.run(serve(pipeline, http_request()))
    assert counted(pipeline, 503) == 1.0


def test_an_entry_that_fails_before_the_request_is_built_is_counted_too() -> None:
    pipeline = pipeline_with(StandInForwarder(answer_ok))
    http = http_request()

    async def unauthorized(started: float) -> InferenceRequest:
        raise ApiError(401, "no key")

    with pytest.raises(ApiError):
        asyncio.run(pipeline.serve(http, ROUTE, unauthorized))
    assert counted(pipeline, 401, model="none") == 1.0


def test_a_body_over_the_size_limit_is_counted_413_not_500() -> None:
    pipeline = pipeline_with(StandInForwarder(answer_ok))

    async def too_large(started: float) -> InferenceRequest:
        # what aiohttp's request.read() raises past client_max_size
        raise web.HTTPRequestEntityTooLarge(max_size=2000, actual_size=5000)

    with pytest.raises(web.HTTPRequestEntityTooLarge):
        asyncio.run(pipeline.serve(http_request(), ROUTE, too_large))
    assert counted(pipeline, 413, model="none") == 1.0
    assert counted(pipeline, 500, model="none") is None


def test_a_client_that_hangs_up_while_waiting_is_counted_499_not_500() -> None:
    async def cancelled(_: InferenceRequest) -> web.StreamResponse:
        raise asyncio.CancelledError  # what aiohttp does to the handler of a closed connection

    pipeline = pipeline_with(StandInForwarder(cancelled))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(serve(pipeline, http_request(open_connection=False)))
    assert counted(pipeline, 499) == 1.0
    assert counted(pipeline, 500) is None
    assert pipeline.admission.in_flight == 0


def test_a_stream_whose_client_left_mid_way_is_counted_499() -> None:
    closing = False
    http = make_mocked_request("POST", ROUTE, transport=mock.Mock(is_closing=lambda: closing))

    async def client_left(request: InferenceRequest) -> web.StreamResponse:
        nonlocal closing
        closing = True  # the client hung up mid-stream: the relay's write failed, it returned
        return web.StreamResponse(status=200)

    pipeline = pipeline_with(StandInForwarder(client_left))
    asyncio.run(serve(pipeline, http))
    assert counted(pipeline, 499) == 1.0
    assert counted(pipeline, 200) is None


def test_a_refused_admission_is_counted_429() -> None:
    admission = Admission(max_concurrent=1, queue_size=0, queue_timeout=0.0)
    admission.in_flight = 1  # the one slot is taken
    forwarder = StandInForwarder(answer_ok)
    pipeline = pipeline_with(forwarder, admission=admission)
    with pytest.raises(ApiError) as refused:
        asyncio.run(serve(pipeline, http_request()))
    assert refused.value.status == 429 and refused.value.code == "queue_full"
    assert counted(pipeline, 429) == 1.0
    assert forwarder.seen == []


# -- the stages by themselves ------------------------------------------------------------------


def test_final_status_is_499_only_once_the_client_is_gone() -> None:
    assert final_status(http_request(), 200) == 200
    assert final_status(http_request(open_connection=False), 500) == 499


def test_a_key_limited_to_models_reaches_only_their_workers() -> None:
    other: Any = SimpleNamespace(id="w3", model_id="other")
    limited = Principal("k", "k", "user", "managed_key", tenant="shop", key={"models": ["m"]})
    assert allowed_workers(limited, (*WORKERS, other), None) == WORKERS
    assert allowed_workers(USER, (*WORKERS, other), None) == (*WORKERS, other)
    with pytest.raises(ApiError) as refused:
        allowed_workers(limited, (other,), "other")
    assert refused.value.status == 403
    assert served_models((*WORKERS, other), None) == ("m", "other")


def test_a_metered_stream_asks_for_usage_without_losing_its_options() -> None:
    data = {"model": "m", "stream": True, "stream_options": {"x": 1}}
    asked = orjson.loads(with_stream_usage(orjson.dumps(data), data))
    assert asked["stream_options"] == {"x": 1, "include_usage": True}
    already = {"stream_options": {"include_usage": True}}
    raw = orjson.dumps(already)
    assert with_stream_usage(raw, already) is raw
