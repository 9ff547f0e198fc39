"""Calls with an end tag per call (qwen25, deepseek_v3, kimi_k2), read block by block.

A block is the text up to and including a call's end tag. When a block opens
with its format's call head (`CallHead`: the call's name, then the start of a
JSON object), its arguments are the raw text from there to the end tag, less
the closing run before the tag (whitespace and the `wrapper`, e.g. the `}` of
qwen25's `{"name": ..., "arguments": {...}}`). Streaming can then send the
arguments as they arrive, holding back only what may still be that closing run
(`held`), and the whole text gives exactly the same arguments. A block without
a head falls back to its format's full-call pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from node.parsers.calls import Piece, ToolCall

Fallback = Callable[[str], list[Piece]]
# No head pattern matches more than this (their runs are bounded; a unit test checks),
# so a stream stops looking for one this far past the last call.
HEAD_LIMIT = 2048
S = r"\s{0,64}"  # whitespace in a head, bounded
# Whitespace held back while it may be part of a call's closing run, at most: a longer
# run streams as it comes (the closed call's arguments are then trimmed as usual), so
# each feed reads a bounded tail (`held_limit`), never the whole run again.
HELD_SPACE = 256


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@dataclass(frozen=True)
class CallHead:
    """Where a call opens (through the first character of its arguments) and closes."""

    # Named groups: `lead` (whitespace and section tokens before the call), `name`, optional `id`.
    pattern: re.Pattern[str]
    end: str  # the call's end tag
    wrapper: str = ""  # closes around the arguments, before the end tag
    name_of: Callable[[re.Match[str]], str] = lambda m: m["name"].strip()
    id_of: Callable[[re.Match[str]], str | None] = lambda m: None
    _tags: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _partials: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Proper prefixes of the end tag and of the wrapper: what a stream may have cut.
        object.__setattr__(self, "_tags", tuple(self.end[:k] for k in range(1, len(self.end))))
        partials = tuple(self.wrapper[:k] for k in range(1, len(self.wrapper)))
        object.__setattr__(self, "_partials", partials)

    def held(self, text: str, start: int) -> int:
        """Where the tail of `text[start:]` that may still close the call begins: the
        longest suffix of whitespace, then the wrapper, whitespace and part of the end
        tag; or whitespace then part of the wrapper. Read backwards, so each call costs
        the suffix's length, not the text's (a regex search tries every start)."""
        ends = [len(text)] + [len(text) - len(t) for t in self._tags if text.endswith(t, start)]
        found = [self._before_closing(text, at, start, HELD_SPACE) for at in ends]
        found += [
            _space_before(text, len(text) - len(p), start, HELD_SPACE)
            for p in self._partials
            if text.endswith(p, start)
        ]
        return min(found)

    @property
    def held_limit(self) -> int:
        """The longest tail `held` can hold back."""
        return 2 * HELD_SPACE + len(self.wrapper) + len(self.end)

    def closed(self, args: str) -> str:
        """The arguments of a call whose end tag came right after `args`."""
        return args[: self._before_closing(args, len(args), 0)]

    def _before_closing(self, text: str, at: int, start: int, most: int | None = None) -> int:
        """Start of whitespace, optionally the wrapper and whitespace, ending at `at`."""
        at = _space_before(text, at, start, most)
        if self.wrapper and text.endswith(self.wrapper, start, at):
            return _space_before(text, at - len(self.wrapper), start, most)
        return at

    def call(self, match: re.Match[str], args: str, raw: str) -> ToolCall:
        return ToolCall(self.name_of(match), args, id=self.id_of(match), raw=raw, headed=True)


def _space_before(text: str, at: int, start: int, most: int | None = None) -> int:
    """Start of the whitespace run ending at `at`, not before `start` (nor `most` back)."""
    floor = start if most is None else max(start, at - most)
    return floor + len(text[floor:at].rstrip())


def read_blocks(tail: str, head: CallHead, fallback: Fallback) -> list[Piece]:
    """Normal text and calls of a section, block by block; the unfinished rest last."""
    pieces: list[Piece] = []
    pos = 0
    while (at := tail.find(head.end, pos)) >= 0:
        pieces += read_block(tail[pos : at + len(head.end)], head, fallback)
        pos = at + len(head.end)
    rest = tail[pos:]
    match = head.pattern.match(rest)
    if match is None:
        return [*pieces, rest]
    args = rest[match.end() : head.held(rest, match.end())]
    return [*pieces, match["lead"], head.call(match, args, rest[match.end("lead") :])]


def read_block(block: str, head: CallHead, fallback: Fallback) -> list[Piece]:
    """One block, ending with the end tag: a headed call, or what `fallback` makes of it."""
    match = head.pattern.match(block)
    if match is None:
        return fallback(block)
    args = head.closed(block[match.end() : len(block) - len(head.end)])
    return [match["lead"], head.call(match, args, block[match.end("lead") :])]
