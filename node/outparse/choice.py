"""Which parsers apply to a worker's output: its own field, else its model's entry, else the
node's default; and the check of the `--reasoning-parser`/`--tool-call-parser` entries."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.parsers.registry import REASONING_PARSERS, TOOL_PARSERS


@dataclass(frozen=True)
class ParserChoice:
    """One kind of parser as the flags set it: a default and per-model entries."""

    default: str | None = None
    by_model: Mapping[str, str] = field(default_factory=dict)

    def name_for(self, own: Any, model: str | None) -> str | None:
        """The worker's own field wins, then its model's entry, then the default."""
        if isinstance(own, str) and own:
            return own
        if model is not None and model in self.by_model:
            return self.by_model[model]
        return self.default


@dataclass(frozen=True)
class ParserSettings:
    reasoning: ParserChoice = ParserChoice()
    tool: ParserChoice = ParserChoice()

    @functools.cached_property  # asked per chat request; the settings are replaced, never changed
    def any_set(self) -> bool:
        """A flag names a parser, so every worker's output may need parsing."""
        return any((c.default or c.by_model) for c in (self.reasoning, self.tool))


NO_PARSERS = ParserSettings()


def split_entries(entries: Iterable[str]) -> list[str]:
    """`["llama3,a=qwen25", "b=json"]` -> one entry each (commas or separate values)."""
    return [part.strip() for entry in entries for part in entry.split(",") if part.strip()]


def read_choice(entries: Iterable[str], known: Iterable[str]) -> ParserChoice:
    """Entries `NAME` (the default) and `MODEL=NAME`; ValueError says what to fix."""
    names = set(known)
    default: str | None = None
    by_model: dict[str, str] = {}
    for entry in split_entries(entries):
        model, _, name = entry.rpartition("=")
        if name not in names:
            listed = ", ".join(sorted(names))
            raise ValueError(f"unknown parser {name!r} in {entry!r}; known: {listed}")
        if not model and "=" in entry:
            raise ValueError(f"{entry!r} names no model; give MODEL=PARSER")
        if not model:
            if default is not None:
                raise ValueError(f"two defaults ({default!r}, {name!r}); give one")
            default = name
        elif model in by_model:
            raise ValueError(f"model {model!r} is given twice")
        else:
            by_model[model] = name
    return ParserChoice(default, by_model)


def entries_check(known: Iterable[str]) -> Callable[[list[str]], str | None]:
    """A setting's check: what is wrong with its entries, or None."""
    names = tuple(known)

    def check(entries: list[str]) -> str | None:
        try:
            read_choice(entries, names)
        except ValueError as exc:
            return str(exc)
        return None

    return check


REASONING_NAMES = tuple(REASONING_PARSERS)
TOOL_NAMES = tuple(TOOL_PARSERS)


def parser_settings(reasoning: Iterable[str], tool: Iterable[str]) -> ParserSettings:
    return ParserSettings(read_choice(reasoning, REASONING_NAMES), read_choice(tool, TOOL_NAMES))
