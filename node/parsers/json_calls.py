"""Calls whose arguments end where their JSON object closes (json, llama3, Mistral's name[ARGS]).

These formats have no end tag per call. When the section opens with a call
head (`JsonHead`: the name, then the `{` of the arguments), each call's
arguments are the raw text from that `{` to the brace that closes it
(`ObjectEnd`, which skips braces inside strings), so a stream can send them as
they arrive and the whole text gives the same. The next call's head is looked
for right where the arguments closed; the wrapper's `}` and the separators
(`,` `;` `[TOOL_CALLS]`) are part of its lead. A section that does not open
with a head is read by the format's whole-text parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from node.parsers.calls import Piece, ToolCall

Fallback = Callable[[str], list[Piece]]
_SPECIAL = re.compile(r'[{}\[\]"\\]')


@dataclass
class ObjectEnd:
    """Where a JSON object that begins at a `{` closes, found a piece at a time."""

    depth: int = 0
    in_string: bool = False
    escape_next: bool = False  # a piece ended with a backslash in a string

    def scan(self, text: str, start: int = 0) -> int | None:
        """Read `text[start:]`; the index just past the closing brace, or None (still open)."""
        skip = start if self.escape_next else -1  # the escaped character's index
        self.escape_next = False
        for match in _SPECIAL.finditer(text, start):
            at, char = match.start(), match.group()
            if at == skip:
                continue
            if self.in_string:
                if char == "\\":
                    skip = at + 1
                    self.escape_next = skip == len(text)
                elif char == '"':
                    self.in_string = False
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                if self.depth <= 0:
                    return at + 1
        return None


@dataclass(frozen=True)
class JsonHead:
    # Named groups: `lead` (separators before the call), `name`, optional `id`; it matches
    # up to the `{` of the arguments (a lookahead), and only that far.
    pattern: re.Pattern[str]
    closing: re.Pattern[str]  # what ends the section after the last call (dropped)
    name_of: Callable[[re.Match[str]], str] = lambda m: m["name"]
    id_of: Callable[[re.Match[str]], str | None] = lambda m: None
    wrapper: re.Pattern[str] = field(default=re.compile(r"\s*\}"))  # the call object's end

    def call(self, match: re.Match[str], args: str, raw: str) -> ToolCall:
        return ToolCall(self.name_of(match), args, id=self.id_of(match), raw=raw, headed=True)


def read_json_calls(tail: str, head: JsonHead, fallback: Fallback) -> list[Piece]:
    """The calls of a section that opens with a head, one after another; else `fallback`."""
    if head.pattern.match(tail) is None:
        return fallback(tail)
    pieces: list[Piece] = []
    pos = 0
    while match := head.pattern.match(tail, pos):
        start = match.end()
        end = ObjectEnd().scan(tail, start)
        if end is None:  # cut off: the arguments so far
            return [*pieces, head.call(match, tail[start:], tail[match.end("lead") :])]
        wrapped = head.wrapper.match(tail, end)
        raw = tail[match.end("lead") : wrapped.end() if wrapped else end]
        pieces.append(head.call(match, tail[start:end], raw))
        pos = end
    closing = head.closing.match(tail, pos)
    return [*pieces, tail[closing.end() if closing else pos :]]
