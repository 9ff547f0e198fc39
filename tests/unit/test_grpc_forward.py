"""One attempt on a gRPC worker (node/grpcproxy/forward.py) with a scripted engine stub:
the answer and the tokens counted for quotas, and what each refusal becomes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import grpc
import orjson
import pytest
from aiohttp import web
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.grpcproxy.forward import EngineForwarder, Retry
from node.grpcproxy.link import StaticLink
from node.grpcproxy.pd import EnginePrefill
from node.limits.usage import TokenMeter
from node.metrics import Metrics
from node.pipeline.request import InferenceRequest
from node.text.tokenizer import TextTokenizer, load_tokenizer
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.worker import Worker
from tests.tokenizer_files import build_tokenizer_dir

BODY = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return load_tokenizer(build_tokenizer_dir(tmp_path_factory.mktemp("tok"), "llama3"))


class Call:
    """A Generate call that yields `responses`, or fails with `error` first."""

    def __init__(self, responses: list[Any], error: grpc.StatusCode | None) -> None:
        self._responses = list(responses)
        self._error = error
        self.cancelled = False

    async def read(self) -> Any:
        if self._error is not None:
            raise grpc.aio.AioRpcError(
                self._error, grpc.aio.Metadata(), grpc.aio.Metadata(), "engine says no"
            )
        return self._responses.pop(0) if self._responses else grpc.aio.EOF

    def cancel(self) -> None:
        self.cancelled = True


class Stub:
    def __init__(self, responses: list[Any], error: grpc.StatusCode | None = None) -> None:
        self.call = Call(responses, error)
        self.sent: list[Any] = []

    def Generate(self, message: Any, **_: Any) -> Call:  # the stub method's name
        self.sent.append(message)
        return self.call


def attempt(
    tok: TextTokenizer, stub: Stub, stream_interval: int = 1
) -> tuple[Any, bool | None, InferenceRequest]:
    worker = cast(
        Worker,
        SimpleNamespace(id="w1", url="grpc://h:1", record={}, model_id="m", connection_mode="grpc"),
    )
    link = StaticLink(stub, tok)
    forwarder = EngineForwarder(Metrics("n"), 5.0, lambda w: link, stream_interval=stream_interval)
    body = orjson.dumps(BODY)
    ex = InferenceRequest(
        cast(Any, None), "/v1/chat/completions", cast(Any, None), body, BODY, "m", False, "rq", 0.0
    )
    ex.meter = TokenMeter()
    outcome, verdict = asyncio.run(forwarder.attempt(ex, worker))
    return outcome, verdict, ex


def test_a_whole_answer_counts_the_engines_tokens(tok: TextTokenizer) -> None:
    ids = tok.encode("Hi there", add_special_tokens=False)
    done = pb.GenerateComplete(
        output_ids=ids, finish_reason="stop", prompt_tokens=11, completion_tokens=len(ids)
    )
    stub = Stub([pb.GenerateResponse(complete=done)])
    outcome, verdict, ex = attempt(tok, stub, stream_interval=4)
    assert isinstance(outcome, web.Response) and outcome.status == 200 and verdict is True
    body = orjson.loads(cast(bytes, outcome.body))
    assert body["choices"][0]["message"]["content"] == "Hi there"
    assert body["usage"]["prompt_tokens"] == 11
    assert ex.meter is not None and ex.meter.tokens == 11 + len(ids)  # what quotas book
    assert stub.sent[0].request_id.startswith("rq-") and stub.call.cancelled
    # A plain answer comes whole: no stream interval is asked for.
    assert not stub.sent[0].sampling_params.HasField("stream_interval")


@pytest.mark.parametrize(
    ("code", "status", "retry", "verdict"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400, False, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, True, True),
        (grpc.StatusCode.UNAVAILABLE, 503, True, False),
    ],
)
def test_a_refusal_before_the_first_token(
    tok: TextTokenizer, code: grpc.StatusCode, status: int, retry: bool, verdict: bool
) -> None:
    outcome, got_verdict, _ = attempt(tok, Stub([], code))
    assert got_verdict is verdict
    if retry:
        assert isinstance(outcome, Retry) and outcome.status == status
        assert b"engine says no" not in outcome.body  # the engine's own failure: not shown
    else:
        assert isinstance(outcome, web.Response) and outcome.status == status
        assert b"engine says no" in cast(bytes, outcome.body)
        # a worker's answer, as every other: it names the request and the worker
        assert (outcome.headers["X-Request-Id"], outcome.headers["X-Meshgate-Worker"]) == (
            "rq",
            "w1",
        )
        assert outcome.content_type == "application/json"


def _engine(n: int, kind: str) -> Worker:
    record = {
        "id": f"{kind}{n}",
        "url": f"grpc://10.0.0.{n}:50051",
        "model_id": "m",
        "worker_type": kind,
        "connection_mode": "grpc",
        "bootstrap_port": 8998,
        "status": "ready",
    }
    return Worker(record, BreakerSettings(), CredentialBox("s" * 40))


def pair_attempt(
    tok: TextTokenizer, prefill_stub: Stub, decode_stub: Stub
) -> tuple[Any, bool | None, EnginePrefill]:
    """One attempt on a gRPC decode with a gRPC prefill half; the prefill drained."""
    prefill, decode = _engine(1, "prefill"), _engine(2, "decode")
    stubs = {prefill.id: prefill_stub, decode.id: decode_stub}
    forwarder = EngineForwarder(Metrics("n"), 5.0, lambda w: StaticLink(stubs[w.id], tok))
    body = orjson.dumps(BODY)
    ex = InferenceRequest(
        cast(Any, None), "/v1/chat/completions", cast(Any, None), body, BODY, "m", False, "rq", 0.0
    )

    async def run() -> tuple[Any, bool | None, EnginePrefill]:
        half = EnginePrefill(prefill, forwarder.links, 5.0, set())
        outcome, verdict = await forwarder.attempt(ex, decode, half)
        assert half.task is not None
        await asyncio.wait((half.task,))
        return outcome, verdict, half

    outcome, verdict, half = asyncio.run(run())
    assert prefill.load == 0 and prefill_stub.call.cancelled
    return outcome, verdict, half


def _complete(tok: TextTokenizer, text: str) -> pb.GenerateResponse:
    ids = tok.encode(text, add_special_tokens=False)
    done = pb.GenerateComplete(output_ids=ids, finish_reason="stop", completion_tokens=len(ids))
    return pb.GenerateResponse(complete=done)


def test_both_halves_get_one_message_and_the_client_the_decodes_answer(
    tok: TextTokenizer,
) -> None:
    prefill, decode = Stub([_complete(tok, "first")]), Stub([_complete(tok, "Hi there")])
    outcome, verdict, half = pair_attempt(tok, prefill, decode)
    assert isinstance(outcome, web.Response) and outcome.status == 200 and verdict is True
    body = orjson.loads(cast(bytes, outcome.body))
    assert body["choices"][0]["message"]["content"] == "Hi there"
    assert prefill.sent == decode.sent  # the same GenerateRequest
    params = decode.sent[0].disaggregated_params
    assert params == half.params and params.bootstrap_host == "10.0.0.1"
    assert params.bootstrap_port == 8998 and not half.failed


def test_a_failing_prefill_is_the_attempts_failure_not_the_decodes(tok: TextTokenizer) -> None:
    prefill = Stub([], grpc.StatusCode.UNAVAILABLE)
    outcome, verdict, half = pair_attempt(tok, prefill, Stub([_complete(tok, "late")]))
    assert outcome == "prefill worker prefill1: the engine failed" and verdict is None
    assert half.failed  # the pair is tried again with another prefill


def test_a_prefill_refusing_the_request_leaves_the_answer_to_the_decode(
    tok: TextTokenizer,
) -> None:
    prefill = Stub([], grpc.StatusCode.INVALID_ARGUMENT)
    decode = Stub([], grpc.StatusCode.INVALID_ARGUMENT)
    outcome, verdict, half = pair_attempt(tok, prefill, decode)
    assert isinstance(outcome, web.Response) and outcome.status == 400 and verdict is True
    assert not half.failed
