"""Tool-call parsing, whole and streaming, around per-format tail parsers.

Each format says where its tool-call section may begin (`ToolFormat`); text
before that point is normal text and streams at once, held back only while
the buffer's end could still be the start of a marker. Calls go out as
OpenAI-shaped `tool_calls` deltas: first `{index, id, type, function: {name,
arguments: ""}}`, then `{index, function: {arguments: <fragment>}}`.

A call's argument fragments stream as they arrive once its name is known and
its arguments object has begun: in formats with an end tag per call
(`ToolFormat.head`, see `call_blocks`) up to what may still be the end, in the
JSON formats (`ToolFormat.json_head`, see `json_calls`) up to where the object
closes. Such a call is committed: if its arguments turn out not to be a JSON
object, it stays emitted and is reported. Other calls (pythonic, sections
that open without a call head) go out whole when the output finishes. A call whose tool has a
JSON schema is held until it closes and validates. Normal text inside the
section (refused calls, text between or after the calls) is sent at the finish.

`tool_rules` decides which calls are kept (`tools`, `tool_choice`, schemas);
refused calls are listed in `invalid_calls`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.parsers.call_blocks import HEAD_LIMIT, CallHead
from node.parsers.calls import TailParser, ToolCall
from node.parsers.deltas import ToolDelta, arguments_delta, collect, first_delta
from node.parsers.holdback import partial_suffix_len
from node.parsers.json_calls import JsonHead, ObjectEnd
from node.parsers.judging import Section, judge, safe_parse_tail, settle
from node.parsers.textbuf import TextBuffer
from node.parsers.tool_rules import InvalidCall, ToolRules


@dataclass(frozen=True)
class ToolFormat:
    markers: tuple[str, ...]  # a section may begin at any of these, anywhere
    leading: tuple[str, ...] = ()  # ... or at one of these, first after whitespace
    parse_tail: TailParser = field(default=lambda tail: [tail])
    # Tokens that only frame the section; dropped from its normal text once a call is read.
    noise: tuple[str, ...] = ()
    # Formats with an end tag per call: how a call opens and closes, for streaming.
    head: CallHead | None = None
    # Formats whose calls end where their arguments object closes.
    json_head: JsonHead | None = None


@dataclass
class JsonCall:
    """A call of a json_head format whose arguments are still arriving."""

    call: ToolCall  # name and id
    start: int  # where its arguments begin in the section
    read: int  # how far they have been scanned
    scanner: ObjectEnd


class ToolCallStream:
    """Feed model output in chunks; get content and tool_calls deltas back.

    `invalid_calls` lists the calls refused so far (complete at `finish`);
    `emitted` counts the calls sent, `valid_emitted` those with valid arguments."""

    def __init__(
        self,
        fmt: ToolFormat,
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: Any = None,
    ):
        self._fmt = fmt
        self._rules = ToolRules(tools, tool_choice)
        self._buf = ""  # before the section: only what may still be a marker
        self._section: TextBuffer | None = None
        self._leading_open = bool(fmt.leading)  # no normal text seen yet
        self._sent = 0  # calls already started
        self._parsed_to = 0  # section prefix already read for complete calls
        self._headless = False  # the text after _parsed_to is too long to open a call
        self._open: tuple[int, int] | None = None  # streaming call: (args start, sent up to)
        self._json: JsonCall | None = None  # the call being read (json_head formats)
        self.invalid_calls: list[InvalidCall] = []

    @property
    def emitted(self) -> int:
        return self._sent

    @property
    def valid_emitted(self) -> int:
        return self._sent - sum(1 for c in self.invalid_calls if c.emitted)

    def feed(self, delta: str) -> ToolDelta:
        if not self._rules.parse:
            return ToolDelta(content=delta)
        if self._section is not None:
            self._section.append(delta)
            out = ToolDelta()
        else:
            out = self._before_section(delta)
        if self._section is not None and self._fmt.head is not None:
            out.tool_calls = self._complete_calls(self._section, self._fmt.head, len(delta))
            out.tool_calls += self._open_call(self._section, self._fmt.head)
        elif self._section is not None and self._fmt.json_head is not None:
            out.tool_calls = self._json_calls(self._section, self._fmt.json_head)
        return out

    def _before_section(self, delta: str) -> ToolDelta:
        self._buf += delta
        if self._leading_open:
            stripped = self._buf.lstrip()
            if not stripped:
                return ToolDelta()
            self._leading_open = False
            if stripped.startswith(self._fmt.leading):
                return self._start_section(0)
        at = self._first_marker()
        if at is not None:
            return self._start_section(at)
        keep = partial_suffix_len(self._buf, self._fmt.markers)
        cut = len(self._buf) - keep
        out, self._buf = self._buf[:cut], self._buf[cut:]
        return ToolDelta(content=out)

    def _start_section(self, at: int) -> ToolDelta:
        self._section = TextBuffer(self._buf[at:])
        out, self._buf = self._buf[:at], ""
        return ToolDelta(content=out)

    def finish(self) -> ToolDelta:
        if not self._rules.parse:
            return ToolDelta()
        if self._section is None:
            buf, self._buf = self._buf, ""
            return ToolDelta(content=buf)
        text, self._section = self._section.slice(0), TextBuffer()
        section = self.section(text)
        self.invalid_calls = section.invalid
        return ToolDelta(content=section.normal, tool_calls=self._send(section.calls[self._sent :]))

    def section(self, tail: str) -> Section:
        pieces = safe_parse_tail(self._fmt.parse_tail, tail)
        return judge(tail, pieces, self._rules, self._fmt.noise)

    def _complete_calls(
        self, text: TextBuffer, head: CallHead, fresh_chars: int
    ) -> list[dict[str, Any]]:
        """Calls whose end tag arrived: each block is read on its own, so only new ones."""
        end = head.end
        # A new end tag overlaps the fresh text; searching only there keeps
        # one-character feeds linear.
        start = max(self._parsed_to, len(text) - fresh_chars - len(end) + 1, 0)
        at = text.slice(start).rfind(end)
        if at < 0:
            return []
        cut = start + at + len(end)
        blocks = text.slice(self._parsed_to, cut)
        self._parsed_to, self._headless = cut, False
        pieces = safe_parse_tail(self._fmt.parse_tail, blocks)
        # The finish reads the whole section again for its text and every report.
        section = judge(blocks, pieces, self._rules, ())
        self.invalid_calls += section.invalid
        return self._send(section.calls)

    def _next_head(self, text: TextBuffer, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """A call head right after the last call, if one has arrived."""
        if self._headless:
            return None
        region = text.slice(self._parsed_to, self._parsed_to + HEAD_LIMIT + 1)
        match = pattern.match(region)
        # A head is never longer than HEAD_LIMIT: past that, none will match here.
        self._headless = match is None and len(region) > HEAD_LIMIT
        return match

    def _open_call(self, text: TextBuffer, head: CallHead) -> list[dict[str, Any]]:
        """Start, or continue, the arguments of a call whose end tag has not arrived."""
        out: list[dict[str, Any]] = []
        if self._open is None:
            match = self._next_head(text, head.pattern)
            if match is None or not self._rules.streams(head.name_of(match)):
                return out
            out += first_delta(ToolCall(head.name_of(match), "", id=head.id_of(match)), self._sent)
            start = self._parsed_to + match.end()
            self._open = (start, start)
        start, sent = self._open
        # Only the tail `held` may hold back is read again: one-character feeds stay linear.
        window = max(sent, len(text) - head.held_limit)
        upto = window + head.held(text.slice(window), 0)
        if upto > sent:
            out.append(arguments_delta(self._sent, text.slice(sent, upto)))
            self._open = (start, upto)
        return out

    def _json_calls(self, text: TextBuffer, head: JsonHead) -> list[dict[str, Any]]:
        """Calls read as their arguments arrive: streamed if kept whatever they hold, else
        sent whole once their object closes."""
        out: list[dict[str, Any]] = []
        while True:
            if self._json is None:
                match = self._next_head(text, head.pattern)
                if match is None:
                    return out
                start = self._parsed_to + match.end()
                call = ToolCall(head.name_of(match), "", id=head.id_of(match), headed=True)
                self._json = JsonCall(call, start, start, ObjectEnd())
                if self._rules.streams(call.name):
                    out += first_delta(call, self._sent)
                    self._open = (start, start)
            reading = self._json
            end = reading.scanner.scan(text.slice(reading.read))
            upto = len(text) if end is None else reading.read + end
            if self._open is not None and upto > reading.read:
                out.append(arguments_delta(self._sent, text.slice(reading.read, upto)))
                self._open = (reading.start, upto)
            reading.read = upto
            if end is None:
                return out
            args = text.slice(reading.start, upto)
            self._json, self._parsed_to, self._headless = None, upto, False
            if self._open is not None:
                self._open = None
                self._sent += 1
                continue
            call = ToolCall(reading.call.name, args, id=reading.call.id, headed=True)
            kept, _, report = settle(call, self._rules)
            if report:
                self.invalid_calls.append(report)
            if kept:
                out += self._send([call])

    def _send(self, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
        """Deltas for the next calls; the first may be the open call, already started."""
        out: list[dict[str, Any]] = []
        for call in calls:
            if self._open is not None:
                start, sent = self._open
                out.append(arguments_delta(self._sent, call.arguments[sent - start :]))
                self._open = None
            else:
                out += first_delta(call, self._sent)
                out.append(arguments_delta(self._sent, call.arguments))
            self._sent += 1
        return [d for d in out if d["function"].get("arguments") != "" or "id" in d]

    def _first_marker(self) -> int | None:
        hits = [i for i in (self._buf.find(m) for m in self._fmt.markers) if i >= 0]
        return min(hits) if hits else None


@dataclass(frozen=True)
class ToolParse:
    """A whole output parsed: what `/parse/function_call` answers."""

    normal_text: str
    calls: list[dict[str, str]]  # {name, arguments}
    invalid_calls: list[InvalidCall]


def parse(
    fmt: ToolFormat,
    text: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    tool_choice: Any = None,
) -> ToolParse:
    """Whole text, parsed by the stream run on one chunk."""
    stream = ToolCallStream(fmt, tools, tool_choice=tool_choice)
    normal, calls = collect([stream.feed(text), stream.finish()])
    return ToolParse(normal, calls, stream.invalid_calls)


def dump_arguments(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
