"""Parser names -> factories, and the lookup that names the known ones on a miss."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from node.parsers import reasoning, tool_calls, tool_formats
from node.parsers.reasoning import ReasoningStream
from node.parsers.tool_calls import ToolCallStream, ToolParse


class UnknownParser(ValueError):
    """A parser name nobody registered; the message lists the known ones (a 400)."""


REASONING_PARSERS: dict[str, Callable[..., ReasoningStream]] = {
    name: (lambda fmt=fmt, **options: ReasoningStream(fmt, **options))
    for name, fmt in reasoning.FORMATS.items()
}

ToolFactory = Callable[..., ToolCallStream]
TOOL_PARSERS: dict[str, ToolFactory] = {
    name: (lambda tools=None, fmt=fmt, **options: ToolCallStream(fmt, tools, **options))
    for name, fmt in tool_formats.FORMATS.items()
}

T = TypeVar("T")


def lookup(kind: str, table: Mapping[str, T], name: str) -> T:
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(table))
        raise UnknownParser(f"unknown {kind} parser {name!r}; known: {known}") from None


def reasoning_parser(name: str, *, stream_reasoning: bool = True) -> ReasoningStream:
    """`stream_reasoning=False`: reasoning comes in one delta when the block closes."""
    return lookup("reasoning", REASONING_PARSERS, name)(stream_reasoning=stream_reasoning)


def tool_parser(
    name: str, tools: Sequence[Mapping[str, Any]] | None = None, *, tool_choice: Any = None
) -> ToolCallStream:
    return lookup("tool-call", TOOL_PARSERS, name)(tools, tool_choice=tool_choice)


def parse_reasoning(name: str, text: str) -> tuple[str, str]:
    """(reasoning_text, normal_text) for a whole output."""
    return reasoning.parse(lookup("reasoning", reasoning.FORMATS, name), text)


def parse_function_call(
    name: str,
    text: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    tool_choice: Any = None,
) -> ToolParse:
    """A whole output: normal text, calls ({name, arguments}) and the calls refused."""
    fmt = lookup("tool-call", tool_formats.FORMATS, name)
    return tool_calls.parse(fmt, text, tools, tool_choice=tool_choice)


def parse_tool_calls(
    name: str,
    text: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    tool_choice: Any = None,
) -> tuple[str, list[dict[str, str]]]:
    """(normal_text, [{name, arguments}]) for a whole output."""
    parsed = parse_function_call(name, text, tools, tool_choice=tool_choice)
    return parsed.normal_text, parsed.calls


def finish_reason(upstream: str | None, stream: ToolCallStream) -> str | None:
    """ "tool_calls" once at least one call with valid arguments was emitted and the model
    stopped on its own; otherwise the worker's own reason ("length" stays "length")."""
    if stream.valid_emitted and upstream in (None, "stop", "tool_calls", "eos"):
        return "tool_calls"
    return upstream
