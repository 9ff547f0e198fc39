"""The bodies of the routes gRPC workers serve, typed and bounded.

Unknown fields pass (OpenAI clients send many this gateway has no use for);
a known field with a wrong type or out of bounds is a 400 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from node.errors import ApiError

T = TypeVar("T", bound=msgspec.Struct)

MAX_CHOICES = 16
MAX_NEW_TOKENS = 1 << 20
MAX_STOPS = 16
MAX_STOP_CHARS = 256
MAX_STOP_IDS = 256
MAX_TOP_LOGPROBS = 20
MAX_INPUT_IDS = 1 << 20
MAX_MESSAGES = 4096
MAX_TOOLS = 512
MAX_CONSTRAINT_CHARS = 256 * 1024
MAX_LOGIT_BIAS = 1024

Temperature = Annotated[float, Meta(ge=0, le=2)]
Probability = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
Repetition = Annotated[float, Meta(gt=0, le=2)]
TopK = Annotated[int, Meta(ge=-1, le=1 << 20)]
NewTokens = Annotated[int, Meta(ge=0, le=MAX_NEW_TOKENS)]
Choices = Annotated[int, Meta(ge=1, le=MAX_CHOICES)]
StopText = Annotated[str, Meta(min_length=1, max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Meta(max_length=MAX_STOPS)]
TokenId = Annotated[int, Meta(ge=0, lt=1 << 32)]
StopIds = Annotated[list[TokenId], Meta(max_length=MAX_STOP_IDS)]
InputIds = Annotated[list[TokenId], Meta(min_length=1, max_length=MAX_INPUT_IDS)]
Constraint = Annotated[str, Meta(max_length=MAX_CONSTRAINT_CHARS)]
LogitBias = Annotated[
    dict[str, Annotated[float, Meta(ge=-100, le=100)]], Meta(max_length=MAX_LOGIT_BIAS)
]


class Sampling(msgspec.Struct, kw_only=True):
    """The sampling fields OpenAI's bodies and SGLang's `sampling_params` share."""

    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    repetition_penalty: Repetition | None = None
    stop: Stop | None = None
    stop_token_ids: StopIds | None = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    min_tokens: NewTokens | None = None
    logit_bias: LogitBias | None = None
    regex: Constraint | None = None
    ebnf: Constraint | None = None
    n: Choices = 1


class JsonSchemaFormat(msgspec.Struct):
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class OpenAIBody(Sampling, kw_only=True):
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: NewTokens | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Meta(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None  # the engine's proto has no seed: accepted, not carried


class ChatBody(OpenAIBody, kw_only=True):
    messages: Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=MAX_MESSAGES)]
    max_completion_tokens: NewTokens | None = None
    tools: Annotated[list[dict[str, Any]], Meta(max_length=MAX_TOOLS)] | None = None
    tool_choice: str | dict[str, Any] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    continue_final_message: bool = False


class CompletionBody(OpenAIBody, kw_only=True):
    prompt: str | InputIds
    echo: bool = False


class NativeSampling(Sampling, kw_only=True):
    max_new_tokens: NewTokens | None = None
    json_schema: Constraint | None = None


class GenerateBody(msgspec.Struct, kw_only=True):
    """SGLang's native `/generate` (one prompt: a batch goes to HTTP workers)."""

    text: str | None = None
    input_ids: InputIds | None = None
    sampling_params: NativeSampling = msgspec.field(default_factory=NativeSampling)
    stream: bool = False
    return_logprob: bool = False
    top_logprobs_num: Annotated[int, Meta(ge=0, le=MAX_TOP_LOGPROBS)] = 0
    rid: str | None = None


class EmbeddingBody(msgspec.Struct, kw_only=True):
    model: str | None = None
    input: str | InputIds
    dimensions: Annotated[int, Meta(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] = "float"


def decode(data: dict[str, Any], kind: type[T]) -> T:
    """`data` (the parsed body) as `kind`, or a 400 naming the field at fault."""
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        what, _, where = str(exc).partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or None
        prefix = f"{field}: " if field else "request body: "
        raise ApiError(400, (prefix + what)[:300], param=field) from None


def stops_of(value: Stop | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
