"""Request parsing and response building shared by the echo worker's routes.

Handlers validate by calling these helpers, which raise `BadRequest`; the route
wrapper in `server.py` turns that into one OpenAI-style 400 response, so no
handler builds error bodies itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

MAX_OUTPUT_TOKENS = 65536
"""Upper bound on generated words per choice, so one request cannot exhaust memory."""

_NO_BODY_STATUSES = frozenset({204, 304})


class BadRequest(Exception):
    """The client sent something the worker will not serve (answered with 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def error_response(
    status: int, message: str, error_type: str, param: str | None = None, code: str | None = None
) -> web.Response:
    """An OpenAI-style error; statuses that cannot carry a body get none."""
    if status < 200 or status in _NO_BODY_STATUSES:
        return web.Response(status=status)
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return json_response({"error": error}, status)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequest."""
    raw = await request.read()
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def int_param(
    body: Mapping[str, Any], name: str, default: int, low: int = 0, high: int = MAX_OUTPUT_TOKENS
) -> int:
    """The integer `body[name]` within [low, high], `default` when absent or null."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be an integer between {low} and {high}", name)
    return value


def max_tokens_param(body: Mapping[str, Any], default: int, *names: str) -> int:
    """The first present of `names` as an output length, else `default`."""
    for name in names:
        if body.get(name) is not None:
            return int_param(body, name, default)
    return default


def model_param(body: Mapping[str, Any], default: str) -> str:
    """The requested model id, or the worker's own when absent."""
    model = body.get("model")
    if model is None or model == "":
        return default
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string", "model")
    return model


def bool_param(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be a boolean", name)
    return value


def include_usage(body: Mapping[str, Any]) -> bool:
    """Whether `stream_options.include_usage` asks for a final usage chunk."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    return bool_param(options, "include_usage")


def is_token_ids(value: Any) -> bool:
    """Whether `value` is a non-empty list of integers (token ids)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def content_text(content: Any, param: str) -> str:
    """The text of a message `content`: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
            else:
                raise BadRequest(f"'{param}' parts must be objects", param)
        return "\n".join(texts)
    raise BadRequest(f"'{param}' must be a string or a list of content parts", param)


def messages_prompt(body: Mapping[str, Any], key: str = "messages") -> str:
    """The concatenated contents of a non-empty `messages` list."""
    messages = body.get(key)
    if not isinstance(messages, list) or not messages:
        raise BadRequest(f"'{key}' must be a non-empty list", key)
    texts = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest(f"every entry of '{key}' must be an object", key)
        texts.append(content_text(message.get("content"), f"{key}.content"))
    return "\n".join(texts)
