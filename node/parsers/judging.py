"""A section's calls judged: kept, dropped or given back as text, and the reports."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from node.parsers.calls import Piece, TailParser, ToolCall
from node.parsers.tool_rules import InvalidCall, ToolRules


@dataclass
class Section:
    """A whole section judged: normal text, the calls kept, and those refused."""

    normal: str
    calls: list[ToolCall]
    invalid: list[InvalidCall]


NOT_OBJECT = "arguments are not a JSON object"


def is_object(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except (ValueError, RecursionError):
        return False


def settle(call: ToolCall, rules: ToolRules) -> tuple[bool, bool, InvalidCall | None]:
    """(kept, text given back, report) for one call."""
    if call.headed and rules.streams(call.name):
        # Committed: its arguments may already be out; a broken one is only reported.
        if is_object(call.arguments):
            return True, False, None
        return True, False, InvalidCall(call.name, call.arguments, NOT_OBJECT, emitted=True)
    if not is_object(call.arguments):
        return False, True, InvalidCall(call.name, call.arguments, NOT_OBJECT)
    verdict = rules.judge(call.name, call.arguments)
    report = InvalidCall(call.name, call.arguments, verdict.reason) if verdict.reason else None
    return verdict.keep, verdict.as_text, report


def judge(tail: str, pieces: list[Piece], rules: ToolRules, noise: Iterable[str]) -> Section:
    """Keep, drop or give back each call; the text is untouched if no call came of it."""
    text, calls, invalid, touched = [], [], [], False
    for piece in pieces:
        if isinstance(piece, str):
            for token in noise:
                piece = piece.replace(token, "")
            text.append(piece)
            continue
        kept, as_text, report = settle(piece, rules)
        touched |= not as_text
        if kept:
            calls.append(piece)
        elif as_text:
            text.append(piece.raw)
        if report:
            invalid.append(report)
    return Section("".join(text).strip() if touched else tail, calls, invalid)


def safe_parse_tail(parse_tail: TailParser, tail: str) -> list[Piece]:
    """A format parser that fails on odd input leaves the text as normal text."""
    try:
        return parse_tail(tail)
    except (ValueError, TypeError, RecursionError, MemoryError, SyntaxError):
        return [tail]
