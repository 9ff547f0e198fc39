"""OpenAI's `tool_calls` delta shapes, and joining them back the way a client does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from node.parsers.calls import ToolCall


@dataclass
class ToolDelta:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def first_delta(call: ToolCall, index: int) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
    ]


def arguments_delta(index: int, fragment: str) -> dict[str, Any]:
    return {"index": index, "function": {"arguments": fragment}}


def collect(deltas: Iterable[ToolDelta]) -> tuple[str, list[dict[str, str]]]:
    """Join streamed deltas the way a client does: content, and calls by index."""
    content: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        content.append(delta.content)
        for piece in delta.tool_calls:
            call = calls.setdefault(piece["index"], {"name": "", "arguments": ""})
            fn = piece.get("function", {})
            call["name"] += fn.get("name") or ""
            call["arguments"] += fn.get("arguments") or ""
    return "".join(content), [calls[i] for i in sorted(calls)]
