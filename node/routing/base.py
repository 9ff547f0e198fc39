"""The selection interface every routing policy implements.

A policy is pure: given the candidate workers (already filtered to those that
are ready, healthy, not draining and whose circuit admits traffic) and the few
facts the router parsed from the request, it returns the index of the chosen
candidate. It does no I/O. Candidates arrive sorted by worker id, so hash-based
policies pick the same worker on every node of the mesh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Candidate(Protocol):
    """What a policy may read about a worker."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def cost(self) -> float: ...

    @property
    def load(self) -> int:
        """Requests this node currently has in flight to the worker."""
        ...


@dataclass(slots=True, frozen=True)
class RequestFacts:
    """The parts of a request that routing needs, parsed once by the router."""

    model: str | None = None
    # Session or routing key (header `x-session-id` / `x-routing-key`, or the body's `user`).
    routing_key: str | None = None
    # Text the prompt starts with (chat messages joined, or the completion prompt).
    prompt: str = ""
    # The prompt's token ids, when the gateway tokenized it (gRPC workers): the engine's
    # cache holds ids, so prefixes are matched on them rather than on the text.
    prompt_ids: tuple[int, ...] = ()

    def prompt_key(self, limit: int) -> str:
        """What prefix policies match (at most `limit` long): the ids, one character
        each, else the text."""
        if self.prompt_ids:
            return "".join(map(chr, self.prompt_ids[:limit]))
        return self.prompt[:limit]


class Policy(Protocol):
    name: str
    # Whether `select` reads `facts.prompt`: the prompt is extracted from the body only
    # for policies that say so, since that walks the whole decoded message list.
    needs_prompt: bool

    def select(self, candidates: Sequence[Candidate], facts: RequestFacts) -> int:
        """Return the index into `candidates` (never empty) of the chosen worker."""
        ...

    def forget(self, worker_id: str) -> None:
        """Drop anything remembered about a worker that left the pool."""
        ...


class PolicyError(ValueError):
    """Unknown policy name or invalid parameters (a client error, never a crash)."""


PolicyParams = dict[str, Any]
