"""Rewrite a worker's chat answer: a whole `chat.completion` body, or its SSE stream.

A choice the worker already structured (its message or delta carries `tool_calls`
or `reasoning_content`) is left alone. Whatever fails here leaves the worker's own
bytes in place and calls `failed`: a parse error never turns an answer into an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from node.outparse.choice_state import ChoiceState, Piece
from node.outparse.plan import Plan

log = logging.getLogger(__name__)

STRUCTURED = ("tool_calls", "reasoning_content")
# Larger answers, and SSE events larger than this, are relayed as the worker sent them.
MAX_WHOLE_BYTES = 16 * 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
# A choice's text beyond this is relayed unparsed (its parsers flushed): what a parser may
# hold back, such as an unclosed tool-call section, stays bounded.
MAX_CHOICE_CHARS = 4 * 1024 * 1024
EVENT_END = re.compile(rb"\r?\n\r?\n")
HEAD_FIELDS = ("id", "object", "created", "model", "system_fingerprint")


def structured(part: Mapping[str, Any]) -> bool:
    return any(part.get(name) for name in STRUCTURED)


def merged_calls(pieces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed `tool_calls` pieces joined into whole calls, as a message carries them."""
    calls: dict[int, dict[str, Any]] = {}
    for piece in pieces:
        blank = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        call = calls.setdefault(piece["index"], blank)
        call["id"] = piece.get("id") or call["id"]
        fn = piece.get("function", {})
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def rewrite_whole(body: bytes, plan: Plan, failed: Callable[[], None]) -> bytes:
    """A `chat.completion` body with each raw choice parsed; `body` itself on any failure."""
    if len(body) > MAX_WHOLE_BYTES:
        failed()
        return body
    try:
        data = orjson.loads(body)
        choices = data.get("choices") if isinstance(data, dict) else None
        changed = False
        for choice in choices if isinstance(choices, list) else ():
            changed = _parse_choice(choice, plan) or changed
        return orjson.dumps(data) if changed else body
    except Exception:  # any failure keeps the worker's answer
        log.exception("could not parse a worker's answer; relaying it as it is")
        failed()
        return body


def _parse_choice(choice: Any, plan: Plan) -> bool:
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict) or structured(message):
        return False
    content = message.get("content")
    if not isinstance(content, str):
        return False
    state = ChoiceState(plan)
    piece = state.feed(content) + state.finish()
    if plan.reasoning:
        message["reasoning_content"] = piece.reasoning or None
    calls = merged_calls(piece.tool_calls)
    message["content"] = piece.content if piece.content or not calls else None
    if calls:
        message["tool_calls"] = calls
    choice["finish_reason"] = state.finish_reason(choice.get("finish_reason"))
    return True


def delta_of(piece: Piece, delta: Mapping[str, Any]) -> dict[str, Any]:
    """The delta to send: the worker's other fields, and the piece in OpenAI's names."""
    out = {k: v for k, v in delta.items() if k != "content"}
    if piece.reasoning:
        out["reasoning_content"] = piece.reasoning
    if piece.content or (delta.get("content") == "" and "role" in delta):
        out["content"] = piece.content
    if piece.tool_calls:
        out["tool_calls"] = piece.tool_calls
    return out


def frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class StreamRewriter:
    """Feed the worker's SSE bytes as they arrive; get the bytes to send the client.

    One parser state per choice index; the parsers are flushed at the chunk that carries
    the choice's finish_reason, or else just before `[DONE]`."""

    def __init__(self, plan: Plan, failed: Callable[[], None]) -> None:
        self._plan = plan
        self._failed = failed
        self._buf = b""
        self._states: dict[int, ChoiceState | None] = {}  # None: relayed as the worker sent it
        self._head: dict[str, Any] = {}
        self._raw = False  # the rest of the stream is relayed untouched

    def feed(self, chunk: bytes) -> bytes:
        if self._raw:
            return chunk
        self._buf += chunk
        out = []
        while not self._raw and (end := EVENT_END.search(self._buf)) is not None:
            event, self._buf = self._buf[: end.end()], self._buf[end.end() :]
            out.append(self._event(event))
        if not self._raw and len(self._buf) > MAX_EVENT_BYTES:
            self._give_up()
        if self._raw:  # what is buffered goes out as it came, and so does the rest
            out.append(self._buf)
            self._buf = b""
        return b"".join(out)

    def close(self) -> bytes:
        """What is left when the worker's stream ends (a stream cut short: as it came)."""
        rest, self._buf = self._buf, b""
        return rest

    def _give_up(self) -> None:
        self._raw = True
        self._failed()

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:") or b"\n" in event.rstrip():
            return event  # not one `data:` line: not a chunk this knows
        data = event[5:].strip()
        if data == b"[DONE]":
            return self._flush() + event
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            return event
        try:
            rewritten = self._chunk(chunk)
        except Exception:  # any failure keeps the worker's stream
            log.exception("could not parse a worker's stream; relaying the rest as it is")
            self._give_up()
            return event
        if rewritten is None:
            return b""
        return frame(rewritten)

    def _chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        choices = chunk["choices"]
        if not choices:
            return chunk  # the usage chunk
        self._head = {k: chunk[k] for k in HEAD_FIELDS if k in chunk}
        kept = [c for c in (self._choice(c) for c in choices) if c is not None]
        return {**chunk, "choices": kept} if kept else None

    def _choice(self, choice: Any) -> Any:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            return choice
        index = choice.get("index", 0)
        state = self._state_for(index, delta)
        if state is None:
            return choice
        content = delta.get("content")
        piece = state.feed(content) if isinstance(content, str) and content else Piece()
        reason = choice.get("finish_reason")
        too_long = state.fed > MAX_CHOICE_CHARS
        if reason is not None or too_long:
            piece += state.finish()
            self._states[index] = None
        if too_long:
            self._failed()
        if reason is not None:
            reason = state.finish_reason(reason)
        out = delta_of(piece, delta)
        if not out and reason is None and not choice.get("logprobs"):
            return None  # all of it is held back for now
        return {**choice, "delta": out, "finish_reason": reason}

    def _state_for(self, index: Any, delta: Mapping[str, Any]) -> ChoiceState | None:
        if structured(delta):
            self._states[index] = None  # the worker parses this choice itself
        elif index not in self._states:
            self._states[index] = ChoiceState(self._plan)
        return self._states[index]

    def _flush(self) -> bytes:
        """Chunks for the choices that ended without a finish_reason."""
        out = []
        for index, state in self._states.items():
            piece = state.finish() if state is not None else Piece()
            self._states[index] = None
            if piece:
                choice = {"index": index, "delta": delta_of(piece, {}), "finish_reason": None}
                out.append(frame({**self._head, "choices": [choice]}))
        return b"".join(out)
