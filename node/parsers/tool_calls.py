"""Tool-call parsing, whole and streaming, around per-format tail parsers.

Each format says where its tool-call section may begin (`ToolFormat`); text
before that point is normal text and streams at once, held back only while
the buffer's end could still be the start of a marker. The section is
buffered; a format with a per-call end tag (`block_end`) sends each call as
soon as its end tag arrives, the others when the stream finishes. Calls go out
as OpenAI-shaped `tool_calls` deltas: first
`{index, id, type, function: {name, arguments: ""}}`, then
`{index, function: {arguments}}`. Normal text inside the section (malformed
calls, text after the calls) is sent at the finish.

Unknown tool names are dropped when `tools` is given, as SGLang does (it logs
and skips them unless SGLANG_FORWARD_UNKNOWN_TOOLS is set); with no tools,
every call is kept.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.parsers.holdback import partial_suffix_len


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str | None = None


TailParser = Callable[[str], tuple[str, list[ToolCall]]]


@dataclass(frozen=True)
class ToolFormat:
    markers: tuple[str, ...]  # a section may begin at any of these, anywhere
    leading: tuple[str, ...] = ()  # ... or at one of these, first after whitespace
    parse_tail: TailParser = field(default=lambda tail: (tail, []))
    # Ends one call. Its parser must never match across this tag, so the calls
    # in a prefix ending with it are the first calls of the whole section.
    block_end: str | None = None


@dataclass
class ToolDelta:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def tool_names(tools: Iterable[Mapping[str, Any]] | None) -> set[str] | None:
    """Names from OpenAI tool definitions (`{type, function: {name}}`) or bare `{name}`."""
    if not tools:
        return None
    names = set()
    for tool in tools:
        if isinstance(tool, Mapping):
            inner = tool.get("function", tool)
            if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
                names.add(inner["name"])
    return names


class ToolCallStream:
    """Feed model output in chunks; get content and tool_calls deltas back."""

    def __init__(self, fmt: ToolFormat, tools: Sequence[Mapping[str, Any]] | None = None):
        self._fmt = fmt
        self._allowed = tool_names(tools)
        self._buf = ""
        self._in_section = False
        self._leading_open = bool(fmt.leading)  # no normal text seen yet
        self._sent = 0  # calls already streamed
        self._parsed_to = 0  # section prefix already read for complete calls

    def feed(self, delta: str) -> ToolDelta:
        out = self._feed_text(delta)
        if self._in_section:
            out.tool_calls = self._complete_calls(len(delta))
        return out

    def _feed_text(self, delta: str) -> ToolDelta:
        self._buf += delta
        if self._in_section:
            return ToolDelta()
        if self._leading_open:
            stripped = self._buf.lstrip()
            if not stripped:
                return ToolDelta()
            self._leading_open = False
            if stripped.startswith(self._fmt.leading):
                self._in_section = True
                return ToolDelta()
        at = self._first_marker()
        if at is not None:
            out, self._buf = self._buf[:at], self._buf[at:]
            self._in_section = True
            return ToolDelta(content=out)
        keep = partial_suffix_len(self._buf, self._fmt.markers)
        cut = len(self._buf) - keep
        out, self._buf = self._buf[:cut], self._buf[cut:]
        return ToolDelta(content=out)

    def finish(self) -> ToolDelta:
        buf, self._buf = self._buf, ""
        if not self._in_section:
            return ToolDelta(content=buf)
        normal, calls = safe_parse_tail(self._fmt.parse_tail, buf)
        kept = self._known(calls)[self._sent :]
        return ToolDelta(content=normal, tool_calls=openai_deltas(kept, self._sent))

    def _complete_calls(self, fresh_chars: int) -> list[dict[str, Any]]:
        end = self._fmt.block_end
        if not end:
            return []
        # A new end tag overlaps the fresh text; searching only there keeps
        # one-character feeds linear.
        start = max(self._parsed_to, len(self._buf) - fresh_chars - len(end) + 1, 0)
        at = self._buf.rfind(end, start)
        cut = at + len(end) if at >= 0 else 0
        if cut <= self._parsed_to:
            return []
        self._parsed_to = cut
        calls = self._known(safe_parse_tail(self._fmt.parse_tail, self._buf[:cut])[1])
        fresh = calls[self._sent :]
        deltas = openai_deltas(fresh, self._sent)
        self._sent += len(fresh)
        return deltas

    def _known(self, calls: list[ToolCall]) -> list[ToolCall]:
        return [c for c in calls if self._allowed is None or c.name in self._allowed]

    def _first_marker(self) -> int | None:
        hits = [i for i in (self._buf.find(m) for m in self._fmt.markers) if i >= 0]
        return min(hits) if hits else None


def safe_parse_tail(parse_tail: TailParser, tail: str) -> tuple[str, list[ToolCall]]:
    """A format parser that fails on odd input leaves the text as normal text."""
    try:
        return parse_tail(tail)
    except (ValueError, TypeError, RecursionError, MemoryError, SyntaxError):
        return tail, []


def openai_deltas(calls: Sequence[ToolCall], first_index: int = 0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, call in enumerate(calls, first_index):
        out.append(
            {
                "index": index,
                "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
        )
        out.append({"index": index, "function": {"arguments": call.arguments}})
    return out


def collect(deltas: Iterable[ToolDelta]) -> tuple[str, list[dict[str, str]]]:
    """Join streamed deltas the way a client does: content, and calls by index."""
    content, calls = [], {}
    for delta in deltas:
        content.append(delta.content)
        for piece in delta.tool_calls:
            call = calls.setdefault(piece["index"], {"name": "", "arguments": ""})
            fn = piece.get("function", {})
            call["name"] += fn.get("name") or ""
            call["arguments"] += fn.get("arguments") or ""
    return "".join(content), [calls[i] for i in sorted(calls)]


def parse(
    fmt: ToolFormat, text: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> tuple[str, list[dict[str, str]]]:
    """Whole text -> (normal_text, [{name, arguments}]); the stream run on one chunk."""
    stream = ToolCallStream(fmt, tools)
    return collect([stream.feed(text), stream.finish()])


def dump_arguments(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
