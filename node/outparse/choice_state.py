"""One choice's parsers: raw text in, OpenAI-shaped reasoning, content and tool-call pieces out.

Reasoning is split first; what is left of the answer goes to the tool-call parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.outparse.plan import Plan
from node.parsers.reasoning import Delta, ReasoningStream
from node.parsers.registry import reasoning_parser, tool_parser


@dataclass
class Piece:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __add__(self, other: Piece) -> Piece:
        return Piece(
            self.reasoning + other.reasoning,
            self.content + other.content,
            self.tool_calls + other.tool_calls,
        )

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content or self.tool_calls)


class HeldReasoning:
    """Reasoning in one piece (`stream_reasoning: false`): held until the answer starts or
    the output ends."""

    def __init__(self, inner: ReasoningStream) -> None:
        self._inner = inner
        self._held: list[str] = []

    def feed(self, text: str) -> Delta:
        return self._release(self._inner.feed(text), final=False)

    def finish(self) -> Delta:
        return self._release(self._inner.finish(), final=True)

    def _release(self, delta: Delta, final: bool) -> Delta:
        self._held.append(delta.reasoning)
        if not (delta.content or final):
            return Delta()
        reasoning, self._held = "".join(self._held), []
        return Delta(reasoning, delta.content)


def reasoning_stream(name: str, stream_reasoning: bool) -> ReasoningStream | HeldReasoning:
    """The one place that knows how `stream_reasoning: false` is done."""
    stream = reasoning_parser(name)
    return stream if stream_reasoning else HeldReasoning(stream)


class ChoiceState:
    def __init__(self, plan: Plan) -> None:
        self._reasoning = (
            reasoning_stream(plan.reasoning, plan.stream_reasoning) if plan.reasoning else None
        )
        self._tool = tool_parser(plan.tool, plan.tools) if plan.tool else None
        self.called = False  # a tool call was produced
        self.fed = 0  # characters of raw text fed

    def feed(self, text: str) -> Piece:
        self.fed += len(text)
        reasoning, content = self._split(text, final=False)
        return self._tools(reasoning, content, final=False)

    def finish(self) -> Piece:
        reasoning, content = self._split("", final=True)
        return self._tools(reasoning, content, final=True)

    def _split(self, text: str, final: bool) -> tuple[str, str]:
        if self._reasoning is None:
            return "", text
        delta = self._reasoning.finish() if final else self._reasoning.feed(text)
        return delta.reasoning, delta.content

    def _tools(self, reasoning: str, content: str, final: bool) -> Piece:
        if self._tool is None:
            return Piece(reasoning, content)
        out = self._tool.feed(content) if content else None
        piece = Piece(reasoning, out.content if out else "", out.tool_calls if out else [])
        if final:
            last = self._tool.finish()
            piece += Piece("", last.content, last.tool_calls)
        self.called = self.called or bool(piece.tool_calls)
        return piece
