"""The vLLM engine service (`vllm.grpc.engine.VllmEngine`) over the same simulated engine.

Each vLLM message is translated to its SGLang counterpart, served by the
`Scheduler`, and the answer translated back, so both services generate, fail,
abort and count load alike. The record keeps the vLLM request's raw bytes
(decode them with `vllm_engine_pb2`) beside the translated request, marked
`"service": "vllm"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb
from smg_grpc_proto.generated import vllm_engine_pb2 as vpb

from node.grpc_echo.scheduler import GRPC_CONTEXT, Received, Scheduler
from node.text.tokenizer import TextTokenizer

SERVICE = "vllm.grpc.engine.VllmEngine"


def copy_scalars(source: Message, target_type: Any, **overrides: Any) -> Any:
    """A `target_type` message with every plain (non-message) field both share."""
    shared = set(target_type.DESCRIPTOR.fields_by_name)
    values: dict[str, Any] = {}
    for field in source.DESCRIPTOR.fields:
        unset = field.has_presence and not source.HasField(field.name)  # oneofs, optionals
        if field.name in shared and field.message_type is None and not unset:
            value = getattr(source, field.name)
            values[field.name] = list(value) if field.is_repeated else value
    return target_type(**{**values, **overrides})


def to_sglang(request: vpb.GenerateRequest, tokenizer: TextTokenizer) -> pb.GenerateRequest:
    """The SGLang GenerateRequest that asks for what the vLLM one asks."""
    sp = request.sampling_params
    sampling = pb.SamplingParams(
        temperature=sp.temperature if sp.HasField("temperature") else 1.0,
        top_p=sp.top_p or 1.0,
        top_k=sp.top_k or -1,
        stop=list(sp.stop),
        stop_token_ids=list(sp.stop_token_ids),
        ignore_eos=sp.ignore_eos,
        n=sp.n,
    )
    if sp.HasField("max_tokens"):
        sampling.max_new_tokens = sp.max_tokens
    if request.WhichOneof("input") == "text":
        tokenized = pb.TokenizedInput(
            original_text=request.text, input_ids=tokenizer.encode(request.text)
        )
    else:
        tokenized = copy_scalars(request.tokenized, pb.TokenizedInput)
    out = pb.GenerateRequest(
        request_id=request.request_id,
        tokenized=tokenized,
        sampling_params=sampling,
        stream=request.stream,
    )
    if sp.HasField("logprobs"):
        out.return_logprob, out.top_logprobs_num = True, max(0, sp.logprobs)
    if request.HasField("kv_transfer_params"):
        kv = request.kv_transfer_params
        out.disaggregated_params.CopyFrom(
            pb.DisaggregatedParams(bootstrap_host=kv.remote_host, bootstrap_port=kv.remote_port)
        )
    return out


def _logprobs(source: pb.OutputLogProbs) -> vpb.OutputLogProbs:
    # The two OutputLogProbs (and TopLogProbs) share fields 1-3 number for number.
    return vpb.OutputLogProbs.FromString(source.SerializeToString())


def from_sglang(response: pb.GenerateResponse) -> vpb.GenerateResponse:
    """The vLLM GenerateResponse saying what the SGLang one says."""
    if response.HasField("chunk"):
        chunk = copy_scalars(response.chunk, vpb.GenerateStreamChunk)
        if response.chunk.HasField("output_logprobs"):
            chunk.output_logprobs.CopyFrom(_logprobs(response.chunk.output_logprobs))
        return vpb.GenerateResponse(chunk=chunk)
    source = response.complete
    complete = copy_scalars(source, vpb.GenerateComplete)  # matched_stop included: plain fields
    if source.HasField("output_logprobs"):
        complete.output_logprobs.CopyFrom(_logprobs(source.output_logprobs))
    return vpb.GenerateResponse(complete=complete)


class VllmEngine:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def generate(
        self, received: Received, context: GRPC_CONTEXT
    ) -> AsyncIterator[vpb.GenerateResponse]:
        translated = to_sglang(received.message, self.scheduler.tokenizer)
        inner = Received(received.raw, translated, "vllm")
        async for response in self.scheduler.generate(inner, context):
            yield from_sglang(response)

    async def embed(self, received: Received, context: GRPC_CONTEXT) -> vpb.EmbedResponse:
        request = pb.EmbedRequest(
            request_id=received.message.request_id,
            tokenized=copy_scalars(received.message.tokenized, pb.TokenizedInput),
        )
        answer = await self.scheduler.embed(Received(received.raw, request, "vllm"), context)
        return copy_scalars(answer, vpb.EmbedResponse)

    async def health_check(
        self, received: Received, context: GRPC_CONTEXT
    ) -> vpb.HealthCheckResponse:
        answer = await self.scheduler.health_check(received, context)
        return copy_scalars(answer, vpb.HealthCheckResponse)

    async def abort(self, received: Received, context: GRPC_CONTEXT) -> vpb.AbortResponse:
        for rid in received.message.request_ids:
            request = pb.AbortRequest(request_id=rid)
            await self.scheduler.abort(Received(received.raw, request, "vllm"), context)
        return vpb.AbortResponse()

    async def get_model_info(
        self, received: Received, context: GRPC_CONTEXT
    ) -> vpb.GetModelInfoResponse:
        answer = await self.scheduler.get_model_info(received, context)
        return copy_scalars(answer, vpb.GetModelInfoResponse)

    async def get_server_info(
        self, received: Received, context: GRPC_CONTEXT
    ) -> vpb.GetServerInfoResponse:
        answer = await self.scheduler.get_server_info(received, context)
        return copy_scalars(
            answer, vpb.GetServerInfoResponse, server_type="vllm-grpc", data_parallel_size=1
        )

    async def get_loads(self, received: Received, context: GRPC_CONTEXT) -> vpb.GetLoadsResponse:
        answer = await self.scheduler.get_loads(received, context)
        loads = [copy_scalars(load, vpb.SchedulerLoad) for load in answer.loads]
        return copy_scalars(answer, vpb.GetLoadsResponse, loads=loads)
