"""The route table's vocabulary: one `Route` record per HTTP operation.

Each API module declares its routes once, as a tuple of `Route`s. Everything
else follows from those records: registration and the auth guard of the
route's audience (`node.api.register`), which requests are audited
(`node.audit`), the error envelope (`node.errors`) and the OpenAPI document
(`node.api.openapi`). A new route is one record, and it cannot be installed
without being documented, guarded and audited the way its audience says.

This module imports nothing of the node, so the middlewares can read the table
without import circles.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from aiohttp import web

Schema = dict[str, Any]
# (request) for public routes and routes that check credentials themselves; (request, principal)
# for routes behind a guard.
Handler = Callable[..., Awaitable[web.StreamResponse]]
Envelope = Literal["error", "management"]


class Audience(StrEnum):
    """Who may call a route: the groups of the README's access table."""

    PUBLIC = "public"
    PROTECTED = "protected"  # inference: any credential but a publication key
    PUBLISHED = "published"  # a published model's external path
    MANAGEMENT = "management"  # /api: any tenant credential, scoped to its tenant
    MANAGEMENT_MINTER = "management_minter"  # /api: the handler asks for role minter
    MANAGEMENT_ADMIN = "management_admin"
    TOKEN = "token"  # /api: a token meshgate issued (the handler checks the kind)
    WEBSOCKET = "websocket"
    CONTROL_PLANE = "control_plane"
    MESH = "mesh"  # a peer's mesh token, or an admin credential


MANAGEMENT_AUDIENCES: Final = frozenset(
    {
        Audience.MANAGEMENT,
        Audience.MANAGEMENT_MINTER,
        Audience.MANAGEMENT_ADMIN,
        Audience.TOKEN,
    }
)
# Whose writes are changes of control state, and so go to the audit log.
AUDITED_AUDIENCES: Final = MANAGEMENT_AUDIENCES | {Audience.CONTROL_PLANE}
# Whose handlers answer from the replicated control state (made current: node/read_index.py).
CONTROL_STATE_AUDIENCES: Final = AUDITED_AUDIENCES | {Audience.MESH}
MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Inference: relayed to workers, never a command committed (node/api/register.py puts no
# commit context around them), served by a data-plane process itself (node/plane/handover.py).
INFERENCE_AUDIENCES: Final = frozenset({Audience.PROTECTED, Audience.PUBLISHED})
# Every write is a Raft command: not committed -> 503; outcome unknown -> 503, or 504 when
# the wait ran out; both with Retry-After.
COMMIT: Final = (503, 504)


@dataclass(frozen=True)
class Query:
    """A query parameter (OpenAPI `in: query`)."""

    name: str
    description: str
    schema: Schema | None = None


@dataclass(frozen=True)
class Route:
    """One HTTP operation: what serves it, who may call it, what it takes and answers.

    `answers` are the success statuses: a description (a JSON object), or a whole OpenAPI
    response object. `errors` are the error statuses the handler itself answers; the
    guard's and the body's are added from the audience and `body`. `body` names a
    component schema of the OpenAPI document, or is a msgspec Struct type.
    """

    method: str
    path: str
    handler: Handler
    audience: Audience
    operation_id: str
    tag: str
    summary: str
    answers: Mapping[int, str | Schema]
    errors: tuple[int, ...] = ()
    body: str | type | None = None
    body_required: bool = True
    query: tuple[Query, ...] = ()
    description: str | None = None
    relayed: bool = False  # the worker's own answer, any status
    # The handler checks its audience's credential itself (no guard is put in front).
    checks_credentials: bool = False
    # A catch-all path is documented by the one tail clients use.
    documented_as: str | None = None
    # Audited whatever its audience (login attempts).
    always_audited: bool = False
    # The management error envelope whatever its audience (public routes under /api).
    management_envelope: bool = False
    # Whether the node makes its replica current before the handler runs (Raft's
    # ReadIndex, node/read_index.py). None: every write of control state, since its
    # handler decides from the state (404, 409) before it commits.
    current_first: bool | None = None

    @property
    def reads_control_state(self) -> bool:
        """Answers from the replicated control state (inference relays a worker's answer)."""
        return self.audience in CONTROL_STATE_AUDIENCES and not self.relayed

    @property
    def makes_current(self) -> bool:
        """The replica is made current before every call of the handler."""
        if self.current_first is not None:
            return self.current_first
        return self.method in MUTATING and self.reads_control_state

    @property
    def takes_consistent(self) -> bool:
        """A read of control state: `?consistent=true` makes the replica current first."""
        return self.reads_control_state and not self.makes_current

    @property
    def documented_path(self) -> str:
        """The OpenAPI path: the router's, without its parameters' patterns."""
        return self.documented_as or re.sub(r"{(\w+):[^}]+}", r"{\1}", self.path)

    @property
    def audited(self) -> bool:
        return self.method in MUTATING and (
            self.always_audited or self.audience in AUDITED_AUDIENCES
        )

    @property
    def may_commit(self) -> bool:
        """May its handler commit commands (a write, but not inference)?"""
        return self.method in MUTATING and self.audience not in INFERENCE_AUDIENCES

    @property
    def envelope(self) -> Envelope:
        if self.management_envelope or self.audience in MANAGEMENT_AUDIENCES:
            return "management"
        return "error"


# Taken by every read of control state (`Route.takes_consistent`; node/api/current.py).
CONSISTENT: Final = Query(
    "consistent",
    "true: answer from a replica that has applied every write committed before this "
    "request (linearizable; on a follower, one Raft round trip first; 503 if it cannot)",
    {"type": "boolean", "default": False},
)


def plain_text(description: str) -> Schema:
    """A success answer in Prometheus (or other plain) text."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


# -- the installed table, as the middlewares see it ---------------------------------------------


@dataclass(frozen=True)
class Installed:
    """The routes of one app: by aiohttp route, and the envelope of paths no route matches."""

    by_route: Mapping[web.AbstractRoute, Route]
    envelopes: Mapping[str, Envelope]  # first path segment -> envelope, where all routes agree
    # Routes another process answers, and audits (a data-plane process hands them over).
    elsewhere: frozenset[web.AbstractRoute] = frozenset()

    @classmethod
    def of(cls, pairs: Iterable[tuple[web.AbstractRoute, Route]]) -> Installed:
        by_route = dict(pairs)
        seen: dict[str, set[Envelope]] = {}
        for route in by_route.values():
            seen.setdefault(_segment(route.path), set()).add(route.envelope)
        envelopes = {segment: kinds.pop() for segment, kinds in seen.items() if len(kinds) == 1}
        return cls(by_route, envelopes)

    def route(self, request: web.Request) -> Route | None:
        return self.by_route.get(request.match_info.route)

    def envelope(self, request: web.Request) -> Envelope:
        """The route's envelope; for a path no route matches, that of its API family."""
        route = self.route(request)
        if route is not None:
            return route.envelope
        return self.envelopes.get(_segment(request.path), "error")

    def audited(self, request: web.Request) -> bool:
        """A declared route's rule; a write no route answers is audited as a refusal."""
        route = self.route(request)
        if route is not None:
            return route.audited
        return request.method in MUTATING and request.match_info.route not in self.elsewhere


INSTALLED: Final = web.AppKey("routes", Installed)


def _segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def installed(request: web.Request) -> Installed | None:
    return request.app.get(INSTALLED)
