"""The SglangScheduler RPCs of the simulator.

Each handler takes a `Received` (the decoded message and its raw bytes, kept for
the record) and the call's context. State is the event loop's alone: running
requests (the load GetLoads reports), their abort events, and a small prefix
cache (`cached_tokens`; FlushCache empties it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from smg_grpc_proto.generated import common_pb2
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node import __version__
from node.echo.pd import PdRooms
from node.grpc_echo.artifacts import chunks, zip_directory
from node.grpc_echo.config import SimConfig
from node.grpc_echo.logprobs import output_logprobs
from node.grpc_echo.plan import Reply, common_prefix, plan_reply, request_faults
from node.grpc_echo.record import Recorder
from node.text.tokenizer import TextTokenizer

CACHED_PROMPTS = 64  # prompts the simulated prefix cache remembers
GRPC_CONTEXT: TypeAlias = grpc.aio.ServicerContext


@dataclass(frozen=True)
class Received:
    raw: bytes
    message: Any
    service: str = "sglang"  # "vllm": translated from the vLLM engine service's message


class Scheduler:
    def __init__(self, config: SimConfig, tokenizer: TextTokenizer, recorder: Recorder) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.recorder = recorder
        self.started = time.time()
        self.running: dict[str, asyncio.Event] = {}
        self.aborted: list[str] = []
        self.flushes = 0
        self._cache: deque[tuple[int, ...]] = deque(maxlen=CACHED_PROMPTS)
        self._special: dict[int, bool] = {}
        self._tokenizer_zip = zip_directory(config.tokenizer_dir)
        mode = config.disaggregation_mode
        # A prefill's rooms (served on its bootstrap port); a decode meets them there.
        self.rooms = PdRooms(mode, config.bootstrap_wait_s) if mode != "null" else None

    # --- inference ---------------------------------------------------------------

    async def generate(
        self, received: Received, context: GRPC_CONTEXT
    ) -> AsyncIterator[pb.GenerateResponse]:
        await self._authorize(context)
        request: pb.GenerateRequest = received.message
        extra = await self._check_disaggregation(request, context)
        extra["service"] = received.service
        self.recorder.request("generate", request, received.raw, **extra)
        rid = request.request_id
        ids = list(request.tokenized.input_ids)
        try:
            self.tokenizer.check_ids(ids)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        prompt = request.tokenized.original_text or self.tokenizer.decode(ids, False)
        faults = request_faults(prompt, self.config.faults, self.config.reply_text)
        if faults.fail_status is not None:
            await context.abort(faults.fail_status, f"injected failure ({faults.fail_status.name})")
        reply = self._plan(request, faults.reply_text)
        cached = self._cached(ids)
        n = max(1, request.sampling_params.n)
        top_n = request.top_logprobs_num if request.return_logprob else None
        aborted = self.running.setdefault(rid, asyncio.Event())
        try:
            if faults.hang:
                await aborted.wait()
            streamed = 0
            batch: list[int] = []  # tokens not yet sent: up to stream_interval per chunk
            every = max(1, request.sampling_params.stream_interval)
            for position, token in enumerate(reply.token_ids, 1):
                if aborted.is_set():
                    break
                await self._maybe_cut(context, faults.cut_after, streamed)
                if self.config.token_delay_ms:
                    await asyncio.sleep(self.config.token_delay_ms / 1000)
                batch.append(token)
                if len(batch) < every and position < len(reply.token_ids):
                    continue
                start, streamed = streamed, streamed + len(batch)
                if request.stream:
                    logprobs = self._logprobs(batch, start, top_n)
                    for index in range(n):
                        yield _chunk(rid, batch, len(ids), streamed, cached, index, logprobs)
                batch = []
            if not aborted.is_set():
                await self._maybe_cut(context, faults.cut_after, streamed)
            done = streamed if aborted.is_set() else len(reply.token_ids)
            logprobs = self._logprobs(reply.token_ids[:done], 0, top_n)
            for index in range(n):
                yield _complete(rid, reply, len(ids), cached, index, done, logprobs)
        finally:
            self.running.pop(rid, None)

    async def _maybe_cut(self, context: GRPC_CONTEXT, cut_after: int | None, sent: int) -> None:
        """Abort the RPC once `cut_after` tokens went out, as a dying engine would."""
        if cut_after is not None and sent >= cut_after:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"stream cut after {sent} tokens")

    def _logprobs(
        self, tokens: list[int], start: int, top_n: int | None
    ) -> pb.OutputLogProbs | None:
        if top_n is None:
            return None
        return output_logprobs(tokens, start, top_n, self.tokenizer.vocab_size)

    def _plan(self, request: pb.GenerateRequest, reply_text: str | None) -> Reply:
        sampling = request.sampling_params
        if reply_text is not None:
            candidates = self.tokenizer.encode(reply_text, add_special_tokens=False)
        else:  # echo the prompt's last ordinary tokens
            ordinary = [i for i in request.tokenized.input_ids if not self._is_special(i)]
            candidates = ordinary[-self.config.max_new_tokens_default :]
        limit = (
            sampling.max_new_tokens
            if sampling.HasField("max_new_tokens")
            else max(0, self.config.max_context_length - len(request.tokenized.input_ids))
        )
        if self.config.disaggregation_mode == "prefill":
            limit = min(limit, 1)  # a prefill server makes the first token only
        return plan_reply(
            candidates,
            max_new_tokens=limit,
            stop_token_ids=set(sampling.stop_token_ids),
            eos_token_ids=self.tokenizer.eos_token_ids,
            ignore_eos=sampling.ignore_eos,
            no_stop_trim=sampling.no_stop_trim,
            stop=list(sampling.stop),
            decode=self.tokenizer.decode,
        )

    def _is_special(self, token: int) -> bool:
        if token not in self._special:
            self._special[token] = self.tokenizer.decode([token], True) == ""
        return self._special[token]

    def _cached(self, ids: list[int]) -> int:
        hit = max((common_prefix(ids, seen) for seen in self._cache), default=0)
        self._cache.append(tuple(ids))
        return hit

    async def embed(self, received: Received, context: GRPC_CONTEXT) -> pb.EmbedResponse:
        await self._authorize(context)
        request: pb.EmbedRequest = received.message
        self.recorder.request("embed", request, received.raw)
        ids = list(request.tokenized.input_ids)
        return pb.EmbedResponse(
            embedding_dim=self.config.embedding_dim,
            embedding=embedding(ids, self.config.embedding_dim),
            prompt_tokens=len(ids),
        )

    async def abort(self, received: Received, context: GRPC_CONTEXT) -> pb.AbortResponse:
        await self._authorize(context)
        request: pb.AbortRequest = received.message
        self.recorder.request("abort", request, received.raw)
        self.aborted.append(request.request_id)
        event = self.running.get(request.request_id)
        if event is None:
            return pb.AbortResponse(success=False, message="no such running request")
        event.set()
        return pb.AbortResponse(success=True, message="aborted")

    # --- management --------------------------------------------------------------

    async def health_check(
        self, received: Received, context: GRPC_CONTEXT
    ) -> pb.HealthCheckResponse:
        await self._authorize(context)
        if self.config.faults.unhealthy:
            return pb.HealthCheckResponse(healthy=False, message="unhealthy (injected)")
        return pb.HealthCheckResponse(healthy=True, message="ok")

    async def get_model_info(
        self, received: Received, context: GRPC_CONTEXT
    ) -> pb.GetModelInfoResponse:
        await self._authorize(context)
        tok, cfg = self.tokenizer, self.config
        bos = tok.encode("", add_special_tokens=True)
        return pb.GetModelInfoResponse(
            model_path=cfg.model_path,
            tokenizer_path=str(cfg.tokenizer_dir),
            is_generation=True,
            served_model_name=cfg.model_id,
            max_context_length=cfg.max_context_length,
            vocab_size=tok.vocab_size,
            model_type="echo",
            eos_token_ids=tok.eos_token_ids,
            bos_token_id=bos[0] if bos else 0,
            max_req_input_len=cfg.max_context_length,
            architectures=["EchoForCausalLM"],
        )

    async def get_server_info(
        self, received: Received, context: GRPC_CONTEXT
    ) -> pb.GetServerInfoResponse:
        await self._authorize(context)
        cfg = self.config
        args = Struct()
        args.update(
            {
                "model_path": cfg.model_path,
                "served_model_name": cfg.model_id,
                "tokenizer_path": str(cfg.tokenizer_dir),
                "port": cfg.port,
                "disaggregation_mode": cfg.disaggregation_mode,
                "disaggregation_bootstrap_port": cfg.bootstrap_port or 0,
                "context_length": cfg.max_context_length,
            }
        )
        info = pb.GetServerInfoResponse(
            server_args=args,
            active_requests=len(self.running),
            uptime_seconds=time.time() - self.started,
            sglang_version=f"meshgate-grpc-echo {__version__}",
            server_type="grpc",
            max_total_num_tokens=cfg.max_context_length * 8,
        )
        info.start_time.FromSeconds(int(self.started))
        return info

    async def get_loads(self, received: Received, context: GRPC_CONTEXT) -> pb.GetLoadsResponse:
        await self._authorize(context)
        running = len(self.running) + self.config.base_load
        load = pb.SchedulerLoad(
            dp_rank=0, num_running_reqs=running, num_total_reqs=running, max_running_requests=64
        )
        if self.config.disaggregation_mode != "null":
            load.disaggregation.mode = self.config.disaggregation_mode
        return pb.GetLoadsResponse(
            timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            version=f"meshgate-grpc-echo {__version__}",
            dp_rank_count=1,
            loads=[load],
            aggregate=pb.AggregateMetrics(total_running_reqs=running, total_reqs=running),
        )

    async def flush_cache(
        self, received: Received, context: GRPC_CONTEXT
    ) -> common_pb2.FlushCacheResponse:
        await self._authorize(context)
        self.recorder.request("flush_cache", received.message, received.raw)
        self.flushes += 1
        self._cache.clear()
        return common_pb2.FlushCacheResponse(success=True, message="flushed")

    async def get_tokenizer(
        self, received: Received, context: GRPC_CONTEXT
    ) -> AsyncIterator[common_pb2.GetTokenizerChunk]:
        await self._authorize(context)
        self.recorder.write("get_tokenizer")
        if self.config.faults.no_tokenizer:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetTokenizer is not served")
        for data, digest in chunks(self._tokenizer_zip):
            yield common_pb2.GetTokenizerChunk(data=data, sha256=digest)

    # --- checks ------------------------------------------------------------------

    async def _authorize(self, context: GRPC_CONTEXT) -> None:
        if not self.config.api_key:
            return
        sent = dict(context.invocation_metadata() or ()).get("authorization", "")
        expected = f"Bearer {self.config.api_key}"
        if not hmac.compare_digest(str(sent).encode(), expected.encode()):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key")

    async def _check_disaggregation(
        self, request: pb.GenerateRequest, context: GRPC_CONTEXT
    ) -> dict[str, Any]:
        """A prefill or decode server needs the bootstrap fields (and records them). A
        prefill remembers the room; a decode waits until its prefill has seen it (as a
        real decode fetches the KV cache from there), and fails the request if it never
        does."""
        mode, rooms = self.config.disaggregation_mode, self.rooms
        if rooms is None:
            return {}
        params = request.disaggregated_params
        if not request.HasField("disaggregated_params") or not params.bootstrap_host:
            rooms.regular_requests += 1
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a {mode} server needs disaggregated_params "
                "(bootstrap_host, bootstrap_port, bootstrap_room)",
            )
        host, port, room = params.bootstrap_host, params.bootstrap_port, params.bootstrap_room
        if mode == "decode" and not (port and await rooms.meet(host, port, room)):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the prefill half of bootstrap_room {room} never arrived at "
                f"{host}:{port} within {rooms.wait_s:g}s",
            )
        rooms.remember(room, "generate")
        return {"mode": mode, "bootstrap": {"host": host, "port": port, "room": room}}


def _chunk(
    rid: str,
    tokens: list[int],
    prompt: int,
    done: int,
    cached: int,
    index: int,
    logprobs: pb.OutputLogProbs | None,
) -> pb.GenerateResponse:
    chunk = pb.GenerateStreamChunk(
        token_ids=tokens,
        prompt_tokens=prompt,
        completion_tokens=done,
        cached_tokens=cached,
        index=index,
        output_logprobs=logprobs,
    )
    return pb.GenerateResponse(request_id=rid, chunk=chunk)


def _complete(
    rid: str,
    reply: Reply,
    prompt: int,
    cached: int,
    index: int,
    done: int,
    logprobs: pb.OutputLogProbs | None,
) -> pb.GenerateResponse:
    """The final message; `done` < the reply's length means it was aborted."""
    aborted = done < len(reply.token_ids)
    output = reply.token_ids[:done]
    complete = pb.GenerateComplete(
        output_ids=output,
        finish_reason="abort" if aborted else reply.finish_reason,
        prompt_tokens=prompt,
        completion_tokens=len(output),
        cached_tokens=cached,
        index=index,
        output_logprobs=logprobs,
    )
    if not aborted and reply.matched_token_id is not None:
        complete.matched_token_id = reply.matched_token_id
    elif not aborted and reply.matched_stop_str is not None:
        complete.matched_stop_str = reply.matched_stop_str
    return pb.GenerateResponse(request_id=rid, complete=complete)


def embedding(ids: list[int], dim: int) -> list[float]:
    """A deterministic unit vector from the ids (the same ids give the same vector)."""
    seed = hashlib.sha256(",".join(map(str, ids)).encode()).digest()
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def keep_raw(message_type: type[Message]) -> Any:
    """A request deserializer that keeps the raw bytes beside the decoded message."""

    def deserialize(raw: bytes) -> Received:
        return Received(raw, message_type.FromString(raw))

    return deserialize
