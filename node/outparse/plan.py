"""What one chat request asks of the gateway's parsers, and the body its worker receives.

Read from the body `proxy/facts.py` already parsed, so deciding costs no extra parse;
a request no parser applies to gets no plan and goes through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from node.errors import ApiError
from node.outparse.choice import ParserSettings

CHAT_PATH = "/v1/chat/completions"
# SGLang's request options that only the parser reads: a worker that did not parse
# would not know them, so they are kept from it when the gateway parses.
GATEWAY_OPTIONS = ("separate_reasoning", "stream_reasoning")


@dataclass(frozen=True)
class Plan:
    reasoning: str | None  # the reasoning parser's name, None: no reasoning parsing
    tool: str | None  # the tool-call parser's name, None: no tool parsing
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: Any = None  # "auto", "required" or a named function: the parser keeps to it
    stream_reasoning: bool = True


def plan_for(
    settings: ParserSettings,
    path: str,
    data: Mapping[str, Any],
    own: Mapping[str, Any],
    model: str | None,
) -> Plan | None:
    """The parsing a request served by a worker (its record `own`, its `model`) gets."""
    if path != CHAT_PATH:
        return None
    own_reasoning, own_tool = own.get("reasoning_parser"), own.get("tool_parser")
    if not (own_reasoning or own_tool or settings.any_set):
        return None  # the hot path: nothing configured anywhere
    reasoning = settings.reasoning.name_for(own_reasoning, model)
    tool = settings.tool.name_for(own_tool, model)
    if not _flag(data, "separate_reasoning"):
        reasoning = None
    tool_choice = data.get("tool_choice")
    if tool_choice == "none":
        tool = None
    if reasoning is None and tool is None:
        return None
    tools = data.get("tools") if isinstance(data.get("tools"), list) else None
    return Plan(reasoning, tool, tools or None, tool_choice, _flag(data, "stream_reasoning"))


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, True)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false", param=name)
    return value


def worker_body(body: bytes, data: Mapping[str, Any]) -> bytes:
    """`body` without the gateway's own options (re-serialised only when it has them)."""
    if not any(name in data for name in GATEWAY_OPTIONS):
        return body
    sent = orjson.loads(body)  # the body as it goes now (metering may have added options)
    return orjson.dumps({k: v for k, v in sent.items() if k not in GATEWAY_OPTIONS})
