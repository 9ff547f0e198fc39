"""The non-OpenAI inference routes of the echo worker.

The gateway also fronts SGLang's native `/generate`, rerankers, classifiers
and Anthropic-style `/v1/messages`; these handlers give each of them a
deterministic answer in the shape the real engine uses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from node.echo import text
from node.echo.httpio import (
    BadRequest,
    bool_param,
    content_text,
    int_param,
    is_token_ids,
    json_response,
    max_tokens_param,
    messages_prompt,
    model_param,
    read_json_object,
)
from node.echo.sse import (
    DONE_FRAME,
    SENTINEL,
    Frame,
    data_frame,
    event_frame,
    frame_template,
    send_stream,
)
from node.echo.state import WorkerState

Handler = Callable[[web.Request], Any]

MAX_TOP_N = 1_000_000


def _generate_prompts(body: dict[str, Any]) -> tuple[list[str], bool]:
    """The prompts of a `/generate` body and whether it is a batch."""
    value = body.get("text")
    if value is None:
        value = body.get("input_ids")
        if is_token_ids(value):
            return [" ".join(map(str, value))], False
        if isinstance(value, list) and value and all(is_token_ids(v) for v in value):
            return [" ".join(map(str, v)) for v in value], True
        raise BadRequest("'text' or 'input_ids' is required", "text")
    if isinstance(value, str):
        return [value], False
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value), True
    raise BadRequest("'text' must be a string or a non-empty list of strings", "text")


def _documents(value: Any) -> list[str]:
    """The texts of a rerank `documents` list (strings or `{"text": ...}` objects)."""
    if not isinstance(value, list):
        raise BadRequest("'documents' must be a list", "documents")
    texts = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("text")
        if not isinstance(item, str):
            raise BadRequest("'documents' entries must be strings or {text}", "documents")
        texts.append(item)
    return texts


def _string_list(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest(f"'{param}' must be a string or a non-empty list of strings", param)


class NativeRoutes:
    """Handlers for `/generate`, rerank, classify and Anthropic messages."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.config = state.config

    def inference_routes(self) -> dict[str, Handler]:
        return {
            "/generate": self.generate,
            "/v1/rerank": self.rerank,
            "/rerank": self.rerank,
            "/v1/classify": self.classify,
            "/v1/messages": self.messages,
        }

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request)
        params = body.get("sampling_params") or {}
        if not isinstance(params, dict):
            raise BadRequest("'sampling_params' must be an object", "sampling_params")
        limit = int_param(params, "max_new_tokens", self.config.max_tokens_default)
        prompts, batch = _generate_prompts(body)
        if bool_param(body, "stream"):
            if batch:
                raise BadRequest("streaming a batch is not supported", "stream")
            frames = self._generate_frames(prompts[0], limit)
            return await send_stream(request, self.state, frames, DONE_FRAME)
        self.state.generated_tokens += limit * len(prompts)
        logprobs = bool_param(body, "return_logprob")
        results = [self._generate_result(prompt, limit, logprobs) for prompt in prompts]
        return json_response(results if batch else results[0])

    def _generate_result(self, prompt: str, limit: int, logprobs: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "id": self.state.new_id(""),
            "prompt_tokens": text.prompt_token_count(prompt),
            "completion_tokens": limit,
            "finish_reason": {"type": "length", "length": limit},
        }
        if logprobs:
            # SGLang's [logprob, token id, text] per prompt token; a decode worker of a PD
            # pair never ran the prompt, so only the prefill half has them.
            prompted = self.config.disaggregation_mode != "decode"
            count = meta["prompt_tokens"] if prompted else 0
            meta["input_token_logprobs"] = [[-1.0, i, None] for i in range(count)]
        return {"text": text.generate_text(prompt, limit), "meta_info": meta}

    def _generate_frames(self, prompt: str, limit: int) -> Iterator[Frame]:
        """SGLang-style chunks: each carries the whole text so far; the last one finishes."""
        meta: dict[str, Any] = {
            "id": self.state.new_id(""),
            "prompt_tokens": text.prompt_token_count(prompt),
            "completion_tokens": 0,
            "finish_reason": None,
        }
        words = text.generate_words(prompt, limit)
        if not words:
            meta["finish_reason"] = {"type": "length", "length": 0}
            yield data_frame({"text": "", "meta_info": meta}), False
            return
        so_far = ""
        for count, piece in enumerate(text.stream_pieces(words), start=1):
            so_far += piece
            meta["completion_tokens"] = count
            if count == limit:
                meta["finish_reason"] = {"type": "length", "length": limit}
            yield data_frame({"text": so_far, "meta_info": meta}), True

    async def rerank(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        query = body.get("query")
        if not isinstance(query, str):
            raise BadRequest("'query' must be a string", "query")
        documents = _documents(body.get("documents"))
        top_n = int_param(body, "top_n", len(documents), 1, MAX_TOP_N)
        with_documents = bool_param(body, "return_documents", True)
        query_words = text.word_set(query)
        scores = [text.rerank_score(query, query_words, doc) for doc in documents]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])[:top_n]
        results = []
        for i in order:
            result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if with_documents:
                result["document"] = {"text": documents[i]}
            results.append(result)
        tokens = text.prompt_token_count(query) + sum(map(text.prompt_token_count, documents))
        return json_response(
            {
                "id": self.state.new_id("rerank-"),
                "model": model_param(body, self.config.model),
                "results": results,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def classify(self, request: web.Request) -> web.Response:
        body = await read_json_object(request)
        inputs = _string_list(body.get("input"), "input")
        data = []
        for i, item in enumerate(inputs):
            probs = text.class_probs(item)
            label = text.best_label(probs)
            data.append({"index": i, "label": label, "probs": probs, "num_classes": len(probs)})
        tokens = sum(map(text.prompt_token_count, inputs))
        return json_response(
            {
                "id": self.state.new_id("classify-"),
                "object": "list",
                "created": int(time.time()),
                "model": model_param(body, self.config.model),
                "data": data,
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            }
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await read_json_object(request)
        prompt = messages_prompt(body)
        system = body.get("system")
        if system is not None:
            prompt = content_text(system, "system") + "\n" + prompt
        model = model_param(body, self.config.model)
        limit = max_tokens_param(body, self.config.max_tokens_default, "max_tokens")
        stop_reason = "max_tokens" if body.get("max_tokens") is not None else "end_turn"
        words = text.generate_words(prompt, limit)
        message: dict[str, Any] = {
            "id": self.state.new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": text.prompt_token_count(prompt), "output_tokens": 0},
        }
        if bool_param(body, "stream"):
            frames = self._message_frames(message, words, stop_reason)
            return await send_stream(request, self.state, frames, None)
        self.state.generated_tokens += limit
        message["content"] = [{"type": "text", "text": " ".join(words)}]
        message["stop_reason"] = stop_reason
        message["usage"]["output_tokens"] = limit
        return json_response(message)

    @staticmethod
    def _message_frames(
        message: dict[str, Any], words: list[str], stop_reason: str
    ) -> Iterator[Frame]:
        """Anthropic's event sequence: start, block start, deltas, block stop, delta, stop."""
        opening = [
            (event_frame("message_start", {"type": "message_start", "message": message}), False),
            (
                event_frame(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                False,
            ),
        ]
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": SENTINEL},
        }
        build = frame_template(delta, event="content_block_delta")
        content = ((build(piece), True) for piece in text.stream_pieces(words))
        final_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": len(words)},
        }
        closing = [
            (event_frame("content_block_stop", {"type": "content_block_stop", "index": 0}), False),
            (event_frame("message_delta", final_delta), False),
            (event_frame("message_stop", {"type": "message_stop"}), False),
        ]
        return itertools.chain(opening, content, closing)
