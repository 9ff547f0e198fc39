"""Scripted chat replies: fixed text instead of the hashed words, for parser tests.

`--reply-text` sets one reply for every chat completion; a request may set its own
with the body field `echo_reply`, and `echo_reasoning` adds a reasoning text the
worker returns already split out (`reasoning_content`), as a worker with its own
reasoning parser does. Streams send the text a few characters per chunk, so tags
such as `<tool_call>` arrive split across chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.echo.httpio import BadRequest

MAX_REPLY_CHARS = 64 * 1024


@dataclass(frozen=True)
class ScriptedReply:
    content: list[str]  # the reply, in stream-sized pieces
    reasoning: list[str]  # reasoning the worker splits out itself, in pieces


def chunked(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_REPLY_CHARS):
        raise BadRequest(f"'{name}' must be a string of at most {MAX_REPLY_CHARS} characters", name)
    return value


def scripted_reply(body: dict[str, Any], default: str | None, size: int) -> ScriptedReply | None:
    """The reply a chat request gets instead of generated words, or None for those."""
    content = _text(body, "echo_reply")
    reasoning = _text(body, "echo_reasoning")
    content = default if content is None else content
    if content is None and reasoning is None:
        return None
    reasoning_pieces = chunked(reasoning, size) if reasoning else []
    return ScriptedReply(chunked(content or "", size), reasoning_pieces)
