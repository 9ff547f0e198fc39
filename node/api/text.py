"""`POST /v1/tokenize` and `POST /v1/detokenize`, in SGLang's shapes.

The tokenizer comes from `node.text.resolve`: a registered one named by
`tokenizer`, or the one the ready workers of `model` name. Loading, encoding and
decoding run in the CPU pool (`node.cpu_pool`), so a big prompt never stalls the
event loop; like inference, the routes pass the rate limits, quotas and admission.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from aiohttp import web
from msgspec import UNSET, Meta, UnsetType

from node.api.admitted import admitted
from node.api.bodies import Body, read_body
from node.api.common import json_response, node_of
from node.api.table import Audience, Handler, Route
from node.auth import Principal
from node.cpu_pool import run_cpu
from node.errors import ApiError
from node.pipeline.authorize import key_models
from node.text.errors import ChatTemplateError
from node.text.resolve import TokenizerNotFound, TokenizerResolver, TokenizerUnavailable
from node.text.tokenizer import InvalidTokenIds, TextTokenizer
from node.text.variables import reserved_variables_problem

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 512 * 1024  # in all, over a list of prompts too
MAX_PROMPTS = 64
MAX_MESSAGES = 1024
MAX_TOKENS = 128 * 1024
T = TypeVar("T")

Name = Annotated[str, Meta(min_length=1, max_length=512, description="a non-empty name")]
Prompt = Annotated[
    str | Annotated[list[str], Meta(min_length=1, max_length=MAX_PROMPTS)],
    Meta(description=f"a string, or a list of 1 to {MAX_PROMPTS} strings"),
]
Messages = Annotated[
    list[dict[str, Any]],
    Meta(min_length=1, max_length=MAX_MESSAGES, description="chat messages ({role, content})"),
]
Tools = Annotated[list[dict[str, Any]], Meta(max_length=256, description="OpenAI tool objects")]
Documents = Annotated[
    list[dict[str, Any]], Meta(max_length=256, description="documents for a RAG template")
]
TemplateKwargs = Annotated[
    dict[str, Any],
    Meta(max_length=64, description="more variables for the chat template (e.g. enable_thinking)"),
]
Tokens = Annotated[
    list[Any], Meta(max_length=MAX_TOKENS, description=f"at most {MAX_TOKENS} token ids")
]


class TokenizeBody(Body):
    """Exactly one of model/tokenizer, exactly one of prompt/messages."""

    model: Name | UnsetType = UNSET
    tokenizer: Name | UnsetType = UNSET
    prompt: Prompt | UnsetType = UNSET
    messages: Messages | UnsetType = UNSET
    add_special_tokens: bool | UnsetType = UNSET
    tools: Tools | None = None
    documents: Documents | None = None
    chat_template_kwargs: TemplateKwargs | None = None


class DetokenizeBody(Body):
    """Exactly one of model/tokenizer."""

    tokens: Tokens
    model: Name | UnsetType = UNSET
    tokenizer: Name | UnsetType = UNSET
    skip_special_tokens: bool = True


def _one_of(body: Body, first: str, second: str) -> None:
    given = [name for name in (first, second) if getattr(body, name) is not UNSET]
    if len(given) != 1:
        said = "both were given" if given else "neither was given"
        raise ApiError(400, f"give exactly one of {first} and {second}; {said}", param=first)


async def _with_tokenizer(
    request: web.Request, principal: Principal, body: Any, work: Callable[[TextTokenizer], T]
) -> T:
    """Resolve the body's tokenizer and run `work` with it, off the event loop."""
    _one_of(body, "model", "tokenizer")
    named = _named(body)
    allowed = key_models(principal)
    if allowed is not None and getattr(body, named) not in allowed:  # a tokenizer too
        raise ApiError(403, f"this key may use only: {', '.join(allowed)}", param=named)
    resolver: TokenizerResolver = node_of(request).tokenizers

    def run() -> T:
        if body.model is not UNSET:
            return work(resolver.for_model(body.model))
        return work(resolver.by_name(body.tokenizer))

    try:
        return await run_cpu(run)
    except TokenizerNotFound as exc:
        said = str(exc) if principal.is_admin else exc.public  # no one else's names
        raise ApiError(404, said, code=exc.code, param=named) from None
    except TokenizerUnavailable as exc:
        said = str(exc) if principal.is_admin else _unavailable(named, exc)
        raise ApiError(422, said, code="TOKENIZER_UNAVAILABLE", param=named) from None
    except ChatTemplateError as exc:
        raise ApiError(400, str(exc), code="CHAT_TEMPLATE_ERROR", param="messages") from None
    except InvalidTokenIds as exc:
        raise ApiError(400, str(exc), code="INVALID_TOKEN_IDS", param="tokens") from None
    except PromptTooLong as exc:
        raise ApiError(400, str(exc), code="PROMPT_TOO_LONG", param="prompt") from None


def _unavailable(named: str, exc: TokenizerUnavailable) -> str:
    """What a caller who is not an admin is told: never the server's paths or errors."""
    log.warning("tokenizer unavailable: %s", exc)
    return (
        f"the tokenizer for this {named} cannot be loaded on this node; "
        "an admin finds why in the node's log"
    )


def _named(body: Any) -> str:
    return "model" if body.model is not UNSET else "tokenizer"


async def tokenize(request: web.Request, principal: Principal) -> web.Response:
    body = await read_body(request, TokenizeBody)
    _one_of(body, "prompt", "messages")
    for name in ("tools", "documents", "chat_template_kwargs"):
        if getattr(body, name) is not None and body.messages is UNSET:
            raise ApiError(
                400, f"{name} go with messages (the chat template renders them)", param=name
            )
    variables = _template_variables(body.chat_template_kwargs)
    prompts = body.prompt if isinstance(body.prompt, list) else [body.prompt]
    chars = sum(len(p) for p in prompts if isinstance(p, str))
    if chars > MAX_PROMPT_CHARS:
        raise ApiError(
            400, f"prompt is {chars} characters; the limit is {MAX_PROMPT_CHARS}", param="prompt"
        )

    def work(tokenizer: TextTokenizer) -> dict[str, Any]:
        if body.messages is not UNSET:
            # The template writes the special tokens itself, as transformers assumes.
            text = tokenizer.apply_chat_template(
                body.messages,
                tools=body.tools,
                documents=body.documents,
                **variables,
            )
            special = body.add_special_tokens is True
            lists = [tokenizer.encode(text, add_special_tokens=special)]
        else:
            special = body.add_special_tokens is not False
            lists = [tokenizer.encode(str(p), add_special_tokens=special) for p in prompts]
        _check_length(lists, tokenizer.max_model_len)
        many = isinstance(body.prompt, list)
        answer: dict[str, Any] = {
            "tokens": lists if many else lists[0],
            "count": [len(ids) for ids in lists] if many else len(lists[0]),
        }
        if tokenizer.max_model_len is not None:
            answer["max_model_len"] = tokenizer.max_model_len
        return answer

    return json_response(await _with_tokenizer(request, principal, body, work))


def _template_variables(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """chat_template_kwargs, refused where they would replace what the request sets."""
    problem = reserved_variables_problem(kwargs)
    if problem:
        raise ApiError(400, problem, param="chat_template_kwargs")
    return kwargs or {}


def _check_length(lists: list[list[int]], limit: int | None) -> None:
    for index, ids in enumerate(lists):
        if limit is not None and len(ids) > limit:
            which = f"prompt {index}" if len(lists) > 1 else "the prompt"
            raise PromptTooLong(f"{which} is {len(ids)} tokens; the model's limit is {limit}")


class PromptTooLong(ValueError):
    """A prompt has more tokens than the model's context."""


async def detokenize(request: web.Request, principal: Principal) -> web.Response:
    body = await read_body(request, DetokenizeBody)

    def work(tokenizer: TextTokenizer) -> dict[str, str]:
        tokenizer.check_ids(body.tokens)
        return {"text": tokenizer.decode(body.tokens, body.skip_special_tokens)}

    return json_response(await _with_tokenizer(request, principal, body, work))


def _route(path: str, handler: Handler, body: type, summary: str, answer: str, more: str) -> Route:
    return Route(
        "POST",
        path,
        admitted(handler),
        Audience.PROTECTED,
        path.rsplit("/", 1)[-1],
        "inference",
        summary,
        answers={200: answer},
        errors=(403, 404, 422),
        body=body,
        description="404: no tokenizer for the model or name; 422: a worker's tokenizer_path "
        "cannot be loaded; 403: the key may not use the model. " + more,
    )


ROUTES = (
    _route(
        "/v1/tokenize",
        tokenize,
        TokenizeBody,
        "Tokenize a prompt, or chat messages through the chat template",
        "tokens, count and max_model_len (lists for a list of prompts)",
        "400: a prompt longer than the model's context, or a chat template that refuses "
        "the messages.",
    ),
    _route(
        "/v1/detokenize",
        detokenize,
        DetokenizeBody,
        "Turn token ids back into text",
        "text",
        "400 names the first token id that is not in the vocabulary, and its index.",
    ),
)
