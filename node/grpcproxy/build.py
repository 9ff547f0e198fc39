"""A client's body -> the engine's request: the chat template, token ids, sampling.

Pure: given the parsed body, the worker's tokenizer and model limits, it gives the
`GenerateRequest` (or `EmbedRequest`) and what the answer must look like
(`Asked`). SamplingParams is filled with the proto's semantic defaults, never its
zeros (the proto says so: temperature 0 would mean greedy, top_k 0 nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.errors import ApiError
from node.grpcproxy.bodies import (
    ChatBody,
    CompletionBody,
    EmbeddingBody,
    GenerateBody,
    OpenAIBody,
    Sampling,
    decode,
    stops_of,
)
from node.grpcproxy.link import EngineModel
from node.text.errors import ChatTemplateError
from node.text.tokenizer import InvalidTokenIds, TextTokenizer
from node.text.variables import reserved_variables_problem

CHAT, COMPLETION, GENERATE, EMBEDDING = (
    "/v1/chat/completions",
    "/v1/completions",
    "/generate",
    "/v1/embeddings",
)
ROUTES = (CHAT, COMPLETION, GENERATE, EMBEDDING)
# The proto's semantic defaults (sglang_scheduler.proto: "Do not use SamplingParams::default()").
DEFAULTS = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": -1,
    "min_p": 0.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "repetition_penalty": 1.0,
}
JSON_OBJECT = '{"type": "object"}'  # what SGLang's OpenAI server sends for json_object


@dataclass(frozen=True)
class Asked:
    """What the client's answer must look like."""

    route: str
    model: str
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    stops: tuple[str, ...] = ()
    skip_special_tokens: bool = True
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True)
class Built:
    message: Any  # pb.GenerateRequest or pb.EmbedRequest
    asked: Asked
    prompt_ids: list[int] = field(default_factory=list)


def build(
    route: str,
    data: dict[str, Any],
    tokenizer: TextTokenizer,
    model: EngineModel,
    request_id: str,
    served_model: str,
) -> Built:
    """The engine request for `route`'s body `data`; a 400 says what to fix."""
    if route == CHAT:
        return _chat(decode(data, ChatBody), tokenizer, model, request_id, served_model)
    if route == COMPLETION:
        return _completion(decode(data, CompletionBody), tokenizer, model, request_id, served_model)
    if route == GENERATE:
        return _generate(decode(data, GenerateBody), tokenizer, model, request_id, served_model)
    if route == EMBEDDING:
        return _embedding(decode(data, EmbeddingBody), tokenizer, model, request_id, served_model)
    raise ApiError(400, f"{route} is not served by gRPC workers; use an HTTP worker")


def _chat(body: ChatBody, tok: TextTokenizer, model: EngineModel, rid: str, served: str) -> Built:
    tools = body.tools if body.tools and body.tool_choice != "none" else None
    problem = reserved_variables_problem(body.chat_template_kwargs)
    if problem:
        raise ApiError(400, problem, param="chat_template_kwargs")
    try:
        text = tok.apply_chat_template(
            body.messages,
            tools=tools,
            add_generation_prompt=not body.continue_final_message,
            **(body.chat_template_kwargs or {}),
        )
    except ChatTemplateError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    ids = tok.encode(text, add_special_tokens=False)
    limit = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    return _openai(body, ids, text, limit, tok, model, rid, served, CHAT)


def _completion(
    body: CompletionBody, tok: TextTokenizer, model: EngineModel, rid: str, served: str
) -> Built:
    if body.echo:
        raise ApiError(400, "echo is not supported by gRPC workers", param="echo")
    text, ids = _prompt(body.prompt, tok, "prompt")
    return _openai(body, ids, text, body.max_tokens, tok, model, rid, served, COMPLETION)


def _openai(
    body: OpenAIBody,
    ids: list[int],
    text: str,
    limit: int | None,
    tok: TextTokenizer,
    model: EngineModel,
    rid: str,
    served: str,
    route: str,
) -> Built:
    _check_length(ids, tok, model)
    params = sampling_params(body, limit, _format_schema(body), tok)
    top = body.top_logprobs or 0
    if top and not body.logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    message = pb.GenerateRequest(
        request_id=rid,
        tokenized=pb.TokenizedInput(original_text=text, input_ids=ids),
        sampling_params=params,
        return_logprob=body.logprobs,
        top_logprobs_num=top,
        stream=body.stream,
    )
    asked = Asked(
        route,
        body.model or served,
        stream=body.stream,
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        n=body.n,
        stops=tuple(stops_of(body.stop)),
        skip_special_tokens=body.skip_special_tokens,
        logprobs=body.logprobs,
        top_logprobs=top,
    )
    return Built(message, asked, ids)


def _generate(
    body: GenerateBody, tok: TextTokenizer, model: EngineModel, rid: str, served: str
) -> Built:
    if (body.text is None) == (body.input_ids is None):
        raise ApiError(400, "give one of text or input_ids", param="text")
    text, ids = _prompt(body.text if body.text is not None else body.input_ids, tok, "input_ids")
    _check_length(ids, tok, model)
    native = body.sampling_params
    params = sampling_params(native, native.max_new_tokens, native.json_schema, tok)
    message = pb.GenerateRequest(
        request_id=rid,
        tokenized=pb.TokenizedInput(original_text=text, input_ids=ids),
        sampling_params=params,
        return_logprob=body.return_logprob,
        top_logprobs_num=body.top_logprobs_num,
        stream=body.stream,
    )
    asked = Asked(
        GENERATE,
        served,
        stream=body.stream,
        n=native.n,
        stops=tuple(stops_of(native.stop)),
        skip_special_tokens=native.skip_special_tokens,
        logprobs=body.return_logprob,
        top_logprobs=body.top_logprobs_num,
    )
    return Built(message, asked, ids)


def _embedding(
    body: EmbeddingBody, tok: TextTokenizer, model: EngineModel, rid: str, served: str
) -> Built:
    text, ids = _prompt(body.input, tok, "input")
    _check_length(ids, tok, model)
    message = pb.EmbedRequest(
        request_id=rid, tokenized=pb.TokenizedInput(original_text=text, input_ids=ids)
    )
    return Built(message, Asked(EMBEDDING, body.model or served), ids)


def _prompt(value: str | list[int] | None, tok: TextTokenizer, name: str) -> tuple[str, list[int]]:
    """(text, ids) of a prompt given as text or as token ids (checked against the vocabulary)."""
    if isinstance(value, str):
        return value, tok.encode(value)
    ids = list(value or ())
    try:
        tok.check_ids(ids)
    except InvalidTokenIds as exc:
        raise ApiError(400, f"{name}: {exc}", param=name) from None
    return "", ids


def _check_length(ids: list[int], tok: TextTokenizer, model: EngineModel) -> None:
    limit = model.max_context_length or tok.max_model_len
    if limit is not None and len(ids) > limit:
        raise ApiError(
            400,
            f"the prompt is {len(ids)} tokens; the model's context limit is {limit}",
            code="context_length_exceeded",
            param="messages",
        )
    if not ids:
        raise ApiError(400, "the prompt is empty", param="prompt")


def _format_schema(body: OpenAIBody) -> str | None:
    """The JSON schema `response_format` asks for, as SGLang's OpenAI server turns it."""
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return JSON_OBJECT
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise ApiError(
            400, "response_format json_schema needs json_schema.schema", param="response_format"
        )
    return json.dumps(fmt.json_schema.schema)


def sampling_params(
    body: Sampling, max_new_tokens: int | None, json_schema: str | None, tok: TextTokenizer
) -> Any:
    """SamplingParams with every unset field at its semantic default."""
    values = {name: getattr(body, name) for name in DEFAULTS}
    values = {k: DEFAULTS[k] if v is None else v for k, v in values.items()}
    stop_ids = list(body.stop_token_ids or ())
    try:
        tok.check_ids(stop_ids)
    except InvalidTokenIds as exc:
        raise ApiError(400, f"stop_token_ids: {exc}", param="stop_token_ids") from None
    params = pb.SamplingParams(
        **values,
        stop=stops_of(body.stop),
        stop_token_ids=stop_ids,
        skip_special_tokens=body.skip_special_tokens,
        spaces_between_special_tokens=True,
        n=body.n,
        min_new_tokens=body.min_tokens or 0,
        ignore_eos=body.ignore_eos,
        logit_bias=body.logit_bias or {},
    )
    if max_new_tokens is not None:
        params.max_new_tokens = max_new_tokens
    constraints = [
        (name, value)
        for name, value in (
            ("json_schema", json_schema),
            ("regex", body.regex),
            ("ebnf_grammar", body.ebnf),
        )
        if value is not None
    ]
    if len(constraints) > 1:
        named = " and ".join(name for name, _ in constraints)
        raise ApiError(400, f"give one constraint, not {named}", param=constraints[1][0])
    if constraints:
        setattr(params, *constraints[0])
    return params
