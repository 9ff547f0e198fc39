"""The OpenAI-compatible routes of the echo worker.

Chat completions, completions, embeddings, responses and the model list, with
the JSON shapes the official `openai` client parses. Output is deterministic
(see `text.py`), so a test can compare a streamed answer with a plain one, or
answers of two workers. `finish_reason` is "length" when the client set a
token limit and "stop" when the worker's default length was used.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aiohttp import web

from node.echo import text
from node.echo.httpio import (
    BadRequest,
    bool_param,
    content_text,
    include_usage,
    int_param,
    is_token_ids,
    json_response,
    max_tokens_param,
    messages_prompt,
    model_param,
    read_json_object,
)
from node.echo.scripted import scripted_reply
from node.echo.sse import DONE_FRAME, SENTINEL, Frame, data_frame, frame_template, send_stream
from node.echo.state import WorkerState

MAX_CHOICES = 16
MAX_EMBEDDING_DIM = 8192

Handler = Callable[[web.Request], Any]


def _finish_reason(body: dict[str, Any], *limit_names: str) -> str:
    return "length" if any(body.get(n) is not None for n in limit_names) else "stop"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _interleaved(
    templates: Sequence[Callable[[str], bytes]], pieces_per_choice: Sequence[Sequence[str]]
) -> Iterator[Frame]:
    """One content frame per piece, choices interleaved position by position."""
    for position in range(len(pieces_per_choice[0])):
        for build, pieces in zip(templates, pieces_per_choice, strict=True):
            yield build(pieces[position]), True


def _spaced(words: Sequence[Sequence[str]]) -> list[list[str]]:
    return [text.stream_pieces(choice) for choice in words]


def _prompt_from_completion_input(prompt: Any) -> str:
    """The hashed prompt of `/v1/completions`: text, joined texts, or token ids as text."""
    if isinstance(prompt, str):
        return prompt
    if is_token_ids(prompt):
        return " ".join(map(str, prompt))
    if isinstance(prompt, list) and prompt:
        parts = []
        for item in prompt:
            if isinstance(item, str):
                parts.append(item)
            elif is_token_ids(item):
                parts.append(" ".join(map(str, item)))
            else:
                raise BadRequest("'prompt' entries must be strings or token-id lists", "prompt")
        return "\n".join(parts)
    raise BadRequest("'prompt' must be a string or a non-empty list", "prompt")


def _embedding_inputs(value: Any) -> list[tuple[bytes, int]]:
    """(hash key, token count) for each input of `/v1/embeddings`."""
    if isinstance(value, str):
        return [(text.text_key(value), text.prompt_token_count(value))]
    if is_token_ids(value):
        return [(text.tokens_key(value), len(value))]
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' must be a string, a token list or a non-empty list", "input")
    inputs = []
    for item in value:
        if isinstance(item, str):
            inputs.append((text.text_key(item), text.prompt_token_count(item)))
        elif is_token_ids(item):
            inputs.append((text.tokens_key(item), len(item)))
        else:
            raise BadRequest("'input' entries must be strings or token-id lists", "input")
    return inputs


def _responses_prompt(value: Any) -> str:
    """The text of a Responses API `input`: a string or a list of message items."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise BadRequest("'input' must be a string or a non-empty list of items", "input")
    texts = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest("'input' items must be objects", "input")
        texts.append(content_text(item.get("content"), "input.content"))
    return "\n".join(texts)


class OpenAIRoutes:
    """Handlers for the `/v1/...` OpenAI API surface."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.config = state.config

    def inference_routes(self) -> dict[str, Handler]:
        return {
            "/v1/chat/completions": self.chat_completions,
            "/v1/completions": self.completions,
            "/v1/embeddings": self.embeddings,
            "/v1/responses": self.responses,
        }

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request)
        prompt = messages_prompt(body)
        model = model_param(body, self.config.model)
        limit_names = ("max_completion_tokens", "max_tokens")
        max_tokens = max_tokens_param(body, self.config.max_tokens_default, *limit_names)
        n = int_param(body, "n", 1, 1, MAX_CHOICES)
        finish = _finish_reason(body, *limit_names)
        reply = scripted_reply(body, self.config.reply_text, self.config.reply_chunk_chars)
        if reply is None:
            pieces = _spaced([text.generate_words(prompt, max_tokens, i) for i in range(n)])
            reasoning: list[str] = []
        else:  # the same scripted text for every choice
            pieces, reasoning, finish = [reply.content] * n, reply.reasoning, "stop"
        generated = (len(pieces[0]) + len(reasoning)) * n
        usage = self.state.reported_usage(_usage(text.prompt_token_count(prompt), generated))
        completion_id = self.state.new_id("chatcmpl-")
        created = int(time.time())
        if bool_param(body, "stream"):
            head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
            head["model"] = model
            shown = usage if include_usage(body) else None
            frames = self._chat_frames(head, pieces, finish, shown, reasoning)
            return await send_stream(request, self.state, frames, DONE_FRAME)
        self.state.generated_tokens += usage["completion_tokens"]
        message: dict[str, Any] = {"role": "assistant"}
        if reasoning:  # a worker that splits its reasoning itself
            message["reasoning_content"] = "".join(reasoning)
        choices = [
            {
                "index": i,
                "message": {**message, "content": "".join(choice)},
                "logprobs": None,
                "finish_reason": finish,
            }
            for i, choice in enumerate(pieces)
        ]
        return json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": choices,
                "usage": usage,
            }
        )

    @staticmethod
    def _chat_frames(
        head: dict[str, Any],
        pieces: list[list[str]],
        finish: str,
        usage: dict[str, Any] | None,
        reasoning: list[str],
    ) -> Iterator[Frame]:
        def chunk(index: int, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {**head, "choices": [choice]}

        indexes = range(len(pieces))
        for i in indexes:
            yield data_frame(chunk(i, {"role": "assistant", "content": ""}, None)), False

        def templates(field: str) -> list[Callable[[str], bytes]]:
            return [frame_template(chunk(i, {field: SENTINEL}, None)) for i in indexes]

        if reasoning:
            yield from _interleaved(templates("reasoning_content"), [reasoning] * len(pieces))
        yield from _interleaved(templates("content"), pieces)
        for i in indexes:
            yield data_frame(chunk(i, {}, finish)), False
        if usage is not None:
            yield data_frame({**head, "choices": [], "usage": usage}), False

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request)
        prompt = _prompt_from_completion_input(body.get("prompt"))
        model = model_param(body, self.config.model)
        max_tokens = max_tokens_param(body, self.config.max_tokens_default, "max_tokens")
        n = int_param(body, "n", 1, 1, MAX_CHOICES)
        finish = _finish_reason(body, "max_tokens")
        words = [text.generate_words(prompt, max_tokens, i) for i in range(n)]
        usage = self.state.reported_usage(_usage(text.prompt_token_count(prompt), max_tokens * n))
        head = {
            "id": self.state.new_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        if bool_param(body, "stream"):
            frames = self._completion_frames(head, words, finish, include_usage(body), usage)
            return await send_stream(request, self.state, frames, DONE_FRAME)
        self.state.generated_tokens += usage["completion_tokens"]
        choices = [
            {"index": i, "text": " ".join(choice), "logprobs": None, "finish_reason": finish}
            for i, choice in enumerate(words)
        ]
        return json_response({**head, "choices": choices, "usage": usage})

    @staticmethod
    def _completion_frames(
        head: dict[str, Any],
        words: list[list[str]],
        finish: str,
        with_usage: bool,
        usage: dict[str, Any],
    ) -> Iterator[Frame]:
        def chunk(index: int, piece: str, reason: str | None) -> dict[str, Any]:
            choice = {"index": index, "text": piece, "logprobs": None, "finish_reason": reason}
            return {**head, "choices": [choice]}

        indexes = range(len(words))
        templates = [frame_template(chunk(i, SENTINEL, None)) for i in indexes]
        closing = [(data_frame(chunk(i, "", finish)), False) for i in indexes]
        if with_usage:
            closing.append((data_frame({**head, "choices": [], "usage": usage}), False))
        return itertools.chain(_interleaved(templates, _spaced(words)), closing)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        inputs = _embedding_inputs(body.get("input"))
        model = model_param(body, self.config.model)
        dim = int_param(body, "dimensions", self.config.embedding_dim, 1, MAX_EMBEDDING_DIM)
        encoding = body.get("encoding_format") or "float"
        if encoding == "float":
            vector_of: Callable[[bytes, int], Any] = text.embedding
        elif encoding == "base64":
            vector_of = text.embedding_base64
        else:
            raise BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
        data = [
            {"object": "embedding", "index": i, "embedding": vector_of(key, dim)}
            for i, (key, _) in enumerate(inputs)
        ]
        tokens = sum(count for _, count in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_response({"object": "list", "data": data, "model": model, "usage": usage})

    async def responses(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        if bool_param(body, "stream"):
            raise BadRequest("the echo worker does not stream /v1/responses", "stream")
        prompt = _responses_prompt(body.get("input"))
        model = model_param(body, self.config.model)
        limit = max_tokens_param(body, self.config.max_tokens_default, "max_output_tokens")
        output = text.generate_text(prompt, limit)
        input_tokens = text.prompt_token_count(prompt)
        self.state.generated_tokens += limit
        content = {"type": "output_text", "text": output, "annotations": []}
        message = {
            "type": "message",
            "id": self.state.new_id("msg_"),
            "role": "assistant",
            "status": "completed",
            "content": [content],
        }
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": limit,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + limit,
        }
        return json_response(
            {
                "id": self.state.new_id("resp_"),
                "object": "response",
                "created_at": int(time.time()),
                "model": model,
                "status": "completed",
                "error": None,
                "incomplete_details": None,
                "output": [message],
                "parallel_tool_calls": False,
                "tool_choice": "none",
                "tools": [],
                "usage": usage,
            }
        )

    def _model_card(self) -> dict[str, Any]:
        config = self.config
        return {
            "id": config.model,
            "object": "model",
            "created": config.started,
            "owned_by": "meshgate-echo",
        }

    async def models(self, request: web.Request) -> web.Response:
        return json_response({"object": "list", "data": [self._model_card()]})

    async def model(self, request: web.Request) -> web.Response:
        if request.match_info["model"] != self.config.model:
            raise web.HTTPNotFound(
                body=b'{"error":{"message":"model not found","type":"invalid_request_error",'
                b'"param":"model","code":"model_not_found"}}',
                content_type="application/json",
            )
        return json_response(self._model_card())
