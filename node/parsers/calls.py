"""What a format's tail parser returns: normal text and calls, in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str | None = None
    raw: str = ""  # the call's own text: normal text again if the call is refused
    headed: bool = False  # read by a `CallHead`: its arguments may have been streamed


Piece = str | ToolCall
TailParser = Callable[[str], list[Piece]]
