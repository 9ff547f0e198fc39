"""One choice's parsers: raw text in, OpenAI-shaped reasoning, content and tool-call pieces out.

Reasoning is split first; what is left of the answer goes to the tool-call parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.outparse.plan import Plan
from node.parsers.registry import finish_reason, reasoning_parser, tool_parser


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


class ChoiceState:
    def __init__(self, plan: Plan) -> None:
        self._reasoning = (
            reasoning_parser(plan.reasoning, stream_reasoning=plan.stream_reasoning)
            if plan.reasoning
            else None
        )
        self._tool = (
            tool_parser(plan.tool, plan.tools, tool_choice=plan.tool_choice) if plan.tool else None
        )
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
        return piece

    def finish_reason(self, upstream: str | None) -> str | None:
        """ "tool_calls" once a valid call went out and the worker stopped on its own."""
        return finish_reason(upstream, self._tool) if self._tool is not None else upstream
