"""One attempt to serve a request on one gRPC worker, relayed as the HTTP path relays.

`proxy/forward.py` keeps the loop (the policy, retries, breakers); this is the
gRPC side of its `_attempt`. It returns what the loop needs: a response to
return, a `Retry` (an answer to keep if no other worker does better), or a
failure phrase (try another worker). Before the first response nothing has
reached the client, so a failing engine is retried elsewhere; after it, a
broken stream ends with the SSE error event. A client that hangs up, and a
stream every choice of which ended at a stop string, send `Abort` to the engine.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from aiohttp import web
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.cpu_pool import run_cpu
from node.errors import error_body
from node.grpcproxy.assemble import Assembly
from node.grpcproxy.build import EMBEDDING, Built, build
from node.grpcproxy.link import EngineLink
from node.grpcproxy.pd import EnginePrefill
from node.grpcproxy.status import client_message, failure_of
from node.metrics import Metrics
from node.outparse.choice import NO_PARSERS, ParserSettings
from node.outparse.plan import Plan, plan_for
from node.outparse.rewrite import StreamRewriter, rewrite_whole
from node.pipeline.request import InferenceRequest
from node.proxy.failures import STREAM_BROKE, stream_error
from node.workers.worker import Worker

log = logging.getLogger(__name__)

# The worker's link, or None when this node has no channel to it (yet).
LinkSource = Callable[[Worker], EngineLink | None]
ABORT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Retry:
    """An engine's retryable refusal, as the client would get it if no worker does better."""

    status: int
    body: bytes


Outcome = web.StreamResponse | Retry | str


def _no_links(worker: Worker) -> EngineLink | None:
    return None


class EngineForwarder:
    def __init__(
        self,
        metrics: Metrics,
        timeout: float,
        links: LinkSource = _no_links,
        parsers: Callable[[], ParserSettings] = lambda: NO_PARSERS,
        stream_interval: int = 1,
    ) -> None:
        self.metrics = metrics
        # Tokens per streamed message: each message costs the gateway a gRPC read and
        # a write to the client, so fewer, fuller ones cost less CPU per token.
        self.stream_interval = stream_interval
        self.timeout = timeout
        self.links = links
        self.parsers = parsers  # the Forwarder's settings, as now in force
        self._aborts: set[asyncio.Task[None]] = set()

    def serves(self, worker: Worker) -> bool:
        return self.links(worker) is not None

    async def attempt(
        self, ex: InferenceRequest, worker: Worker, prefill: EnginePrefill | None = None
    ) -> tuple[Outcome, bool | None]:
        """One try on `worker`: the outcome, and the worker's verdict for its breaker
        (True: it answered, False: it failed, None: never found out). With a `prefill`
        half, `worker` is its decode: both get the same message, with its
        `disaggregated_params`; a prefill that fails first is the outcome (verdict None)."""
        link = self.links(worker)
        if link is None:
            return f"worker {worker.id}: not connected, or its tokenizer not loaded yet", False
        rid = f"{ex.request_id[:64]}-{uuid.uuid4().hex[:12]}"
        built = await self._built_for(ex, worker, link, rid)
        if ex.path == EMBEDDING:
            return await self._embed(ex, worker, link, built)
        # Before the engine starts: a body the parsers refuse is a 400 with nothing to abort.
        plan = plan_for(self.parsers(), ex.path, ex.data, worker.record, worker.model_id)
        if built.asked.stream and self.stream_interval > 1:
            built.message.sampling_params.stream_interval = self.stream_interval
        if prefill is not None:
            built.message.disaggregated_params.CopyFrom(prefill.params)
            prefill.start(built.message)
        call = link.stub.Generate(built.message, timeout=self.timeout, metadata=link.metadata)
        try:
            return await self._relay(ex, worker, link, built, plan, call, prefill)
        except asyncio.CancelledError:  # the client went away (or the node is stopping)
            self._abort(link, rid, "the client went away")
            raise
        finally:
            call.cancel()

    async def _relay(
        self,
        ex: InferenceRequest,
        worker: Worker,
        link: EngineLink,
        built: Built,
        plan: Plan | None,
        call: Any,
        prefill: EnginePrefill | None,
    ) -> tuple[Outcome, bool | None]:
        try:
            first = await (call.read() if prefill is None else prefill.alongside(call.read()))
        except grpc.aio.AioRpcError as exc:
            return self._refused(ex, worker, exc)
        if isinstance(first, str):
            return first, None  # the prefill half failed; the decode was not at fault
        if first is grpc.aio.EOF:
            return f"worker {worker.id}: the engine ended its stream before answering", False
        rid = built.message.request_id
        assembly = Assembly(built.asked, link.tokenizer, rid)
        if built.asked.stream:
            return await self._stream(ex, worker, link, call, first, assembly, plan, rid)
        return await self._whole(ex, worker, call, first, assembly, plan)

    async def prompt_ids(
        self, ex: InferenceRequest, candidates: Sequence[Worker]
    ) -> tuple[int, ...]:
        """The prompt's token ids, for a policy that matches prefixes: tokenized as the
        first gRPC candidate's engine gets it (and kept, for an attempt on such a worker)."""
        for worker in candidates:
            link = self.links(worker) if worker.connection_mode == "grpc" else None
            if link is not None:
                built = await self._build(ex, worker, link, "")
                ex.engine_request = (self._reuse_key(ex, worker, link), built)
                return tuple(built.prompt_ids)
        return ()

    async def _built_for(
        self, ex: InferenceRequest, worker: Worker, link: EngineLink, rid: str
    ) -> Built:
        """The engine request: the one routing built, if it suits this worker, else a new one."""
        kept = ex.engine_request
        if kept is not None and kept[0] == self._reuse_key(ex, worker, link):
            built: Built = kept[1]
            built.message.request_id = rid
            return built
        return await self._build(ex, worker, link, rid)

    @staticmethod
    def _reuse_key(ex: InferenceRequest, worker: Worker, link: EngineLink) -> tuple[Any, ...]:
        return (id(link.tokenizer), link.model, worker.model_id or ex.model)

    async def _build(
        self, ex: InferenceRequest, worker: Worker, link: EngineLink, rid: str
    ) -> Built:
        served = worker.model_id or ex.model or ""
        args = (ex.path, ex.data, link.tokenizer, link.model, rid, served)
        # Templates and tokenizers are untrusted CPU work: never on the event loop.
        return await run_cpu(lambda: build(*args))

    def _refused(
        self, ex: InferenceRequest, worker: Worker, exc: grpc.aio.AioRpcError
    ) -> tuple[Outcome, bool | None]:
        """The engine refused before its first response: retry elsewhere, or answer."""
        code, details = exc.code(), exc.details()
        failure = failure_of(code)
        log.warning("worker %s (%s): Generate failed: %s: %s", worker.id, worker.url, code, details)
        body = orjson.dumps(
            error_body(failure.status, client_message(code, details), code=failure.code)
        )
        if failure.retry:
            return Retry(failure.status, body), failure.status < 500
        return self._json(ex, worker, body, failure.status), True

    async def _stream(
        self,
        ex: InferenceRequest,
        worker: Worker,
        link: EngineLink,
        call: Any,
        first: Any,
        assembly: Assembly,
        plan: Plan | None,
        rid: str,
    ) -> tuple[Outcome, bool | None]:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        out = web.StreamResponse(status=200, headers={**headers, **ex.reply_headers(worker.id)})
        rewriter = StreamRewriter(plan, self.metrics.parse_failed) if plan else None

        async def send(frames: list[bytes]) -> None:
            data = b"".join(frames)
            data = rewriter.feed(data) if rewriter is not None and data else data
            if data:
                await out.write(data)

        if ex.before_reply is not None:  # WASM OnResponse: status and headers only
            await ex.before_reply(out, None)
        await out.prepare(ex.http)
        ex.first_token_secs = time.perf_counter() - ex.started
        self.metrics.first_token(ex.path, ex.first_token_secs)
        response = first
        try:
            await send([*assembly.opening(), *assembly.feed(first)])
            while not assembly.done:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                await send(list(assembly.feed(response)))
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "worker %s (%s): stream of %s: %s", worker.id, worker.url, ex.path, exc.code()
            )
            self._count(ex, assembly)
            await send([])
            if rewriter is not None and (rest := rewriter.close()):
                await out.write(rest)
            await out.write(stream_error(ex.path, STREAM_BROKE))
            return out, False
        except ConnectionResetError:
            # The client went away (counted as 499): the engine stops too.
            self._count(ex, assembly)
            self._abort(link, rid, "the client went away")
            return out, None
        if response is not grpc.aio.EOF and not _complete(response):
            self._abort(link, rid, "every choice ended at a stop string")
        self._count(ex, assembly)
        try:
            await send(assembly.closing())
            if rewriter is not None and (rest := rewriter.close()):
                await out.write(rest)
            await out.write_eof()
        except ConnectionResetError:
            return out, None
        return out, True

    async def _whole(
        self,
        ex: InferenceRequest,
        worker: Worker,
        call: Any,
        first: Any,
        assembly: Assembly,
        plan: Plan | None,
    ) -> tuple[Outcome, bool | None]:
        response = first
        try:
            while response is not grpc.aio.EOF:
                list(assembly.feed(response))
                if assembly.done:
                    break
                response = await call.read()
        except grpc.aio.AioRpcError as exc:
            return self._refused(ex, worker, exc)
        self._count(ex, assembly)
        body = orjson.dumps(assembly.whole())
        if plan is not None:
            body = rewrite_whole(body, plan, self.metrics.parse_failed)
        return self._json(ex, worker, body), True

    async def _embed(
        self, ex: InferenceRequest, worker: Worker, link: EngineLink, built: Built
    ) -> tuple[Outcome, bool | None]:
        try:
            answer = await link.stub.Embed(
                built.message, timeout=self.timeout, metadata=link.metadata
            )
        except grpc.aio.AioRpcError as exc:
            return self._refused(ex, worker, exc)
        vector: Any = list(answer.embedding)
        dims = ex.data.get("dimensions")
        if isinstance(dims, int) and 0 < dims < len(vector):
            vector = vector[:dims]
        if ex.data.get("encoding_format") == "base64":  # little-endian float32, as OpenAI's
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        tokens = answer.prompt_tokens or len(built.prompt_ids)
        if ex.meter is not None:
            ex.meter.tokens = tokens
        body = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": built.asked.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return self._json(ex, worker, orjson.dumps(body)), True

    def _json(
        self, ex: InferenceRequest, worker: Worker, body: bytes, status: int = 200
    ) -> web.Response:
        headers = {"Content-Type": "application/json", **ex.reply_headers(worker.id)}
        return web.Response(status=status, body=body, headers=headers)

    @staticmethod
    def _count(ex: InferenceRequest, assembly: Assembly) -> None:
        """The engine's token counts, for quotas and usage (as a worker's `usage` is)."""
        if ex.meter is not None:
            ex.meter.tokens = assembly.counts.usage()["total_tokens"]

    def _abort(self, link: EngineLink, rid: str, reason: str) -> None:
        """Tell the engine to stop generating (in the background: the handler may be
        cancelled already)."""
        task = asyncio.get_running_loop().create_task(self._send_abort(link, rid, reason))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    @staticmethod
    async def _send_abort(link: EngineLink, rid: str, reason: str) -> None:
        try:
            await link.stub.Abort(
                pb.AbortRequest(request_id=rid, reason=reason),
                timeout=ABORT_TIMEOUT,
                metadata=link.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            log.info("Abort of %s was not delivered: %s", rid, exc.code())


def _complete(response: Any) -> bool:
    return bool(response.WhichOneof("response") == "complete")
