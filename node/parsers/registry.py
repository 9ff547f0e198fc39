"""Parser names -> factories, and the lookup that names the known ones on a miss."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from node.parsers import reasoning, tool_calls, tool_formats
from node.parsers.reasoning import ReasoningStream
from node.parsers.tool_calls import ToolCallStream


class UnknownParser(ValueError):
    """A parser name nobody registered; the message lists the known ones (a future 400)."""


REASONING_PARSERS: dict[str, Callable[[], ReasoningStream]] = {
    name: (lambda fmt=fmt: ReasoningStream(fmt)) for name, fmt in reasoning.FORMATS.items()
}

ToolFactory = Callable[[Sequence[Mapping[str, Any]] | None], ToolCallStream]
TOOL_PARSERS: dict[str, ToolFactory] = {
    name: (lambda tools=None, fmt=fmt: ToolCallStream(fmt, tools))
    for name, fmt in tool_formats.FORMATS.items()
}

T = TypeVar("T")


def lookup(kind: str, table: Mapping[str, T], name: str) -> T:
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(table))
        raise UnknownParser(f"unknown {kind} parser {name!r}; known: {known}") from None


def reasoning_parser(name: str) -> ReasoningStream:
    return lookup("reasoning", REASONING_PARSERS, name)()


def tool_parser(name: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ToolCallStream:
    return lookup("tool-call", TOOL_PARSERS, name)(tools)


def parse_reasoning(name: str, text: str) -> tuple[str, str]:
    """(reasoning_text, normal_text) for a whole output."""
    return reasoning.parse(lookup("reasoning", reasoning.FORMATS, name), text)


def parse_tool_calls(
    name: str, text: str, tools: Sequence[Mapping[str, Any]] | None = None
) -> tuple[str, list[dict[str, str]]]:
    """(normal_text, [{name, arguments}]) for a whole output."""
    return tool_calls.parse(lookup("tool-call", tool_formats.FORMATS, name), text, tools)
