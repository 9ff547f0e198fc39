"""The one object an inference request is, from the moment it enters to the moment it ends.

Every entry (the OpenAI routes, a deployment's predict, a published model's
external path) builds an `InferenceRequest` once: what was asked, by whom,
the body as the client sent it, and when it arrived. The stages after it read
from it and fill in what they decide (the candidate workers, the policy, the
quota headers, the token meter); the forwarder records which worker it used.
The body stays bytes: only the fields routing needs were parsed, once.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from node.auth import Principal
from node.limits.usage import TokenMeter
from node.routing.base import RequestFacts
from node.workers.worker import Worker

ROUTING_KEY_HEADERS = ("x-session-id", "x-routing-key")
NO_FACTS = RequestFacts()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes when it is not simply "the workers serving its model"."""

    candidates: tuple[Worker, ...] | None = None
    policy_key: str | None = None
    deployment: str | None = None  # the deployment's name (a tenant's own: never a label)
    published: dict[str, Any] | None = None  # the publication, for its limits and usage


DIRECT = Target()


@dataclass(slots=True)
class InferenceRequest:
    """One inference request on its way through the pipeline."""

    http: web.Request
    path: str  # the worker route the body goes to
    principal: Principal
    body: bytes
    data: dict[str, Any]
    model: str | None
    stream: bool
    request_id: str
    started: float
    target: Target = DIRECT
    # Decided by the stages.
    candidates: tuple[Worker, ...] = ()
    facts: RequestFacts = NO_FACTS
    headers: dict[str, str] = field(default_factory=dict)  # X-RateLimit-*
    meter: TokenMeter | None = None  # set when tokens must be counted
    engine_request: Any = None  # for gRPC workers: built once, when routing needed the ids
    # WASM middleware: headers its OnRequest modules set (None: removed) for the worker, and
    # its OnResponse step, which a stream calls before its first byte.
    header_edits: dict[str, str | None] = field(default_factory=dict)
    before_reply: Callable[[web.StreamResponse, bytes | None], Awaitable[None]] | None = None
    replied: bool = False  # OnResponse ran (on an answer, or on the node's own error)
    # Recorded by the forwarder.
    worker: Worker | None = None
    attempts: int = 0
    first_token_secs: float | None = None  # a stream's first byte, from `started`

    def reply_headers(self, worker_id: str) -> dict[str, str]:
        """The headers every worker's answer carries to the client (README: each names
        the request and the worker), the quota's too."""
        return {"X-Request-Id": self.request_id, "X-Meshgate-Worker": worker_id, **self.headers}

    @property
    def policy_key(self) -> str | None:
        return self.target.policy_key or self.model

    @property
    def shown_model(self) -> str | None:
        """The model the request is counted under on the public /metrics: the body's, or
        for a deployment the model of the worker that served it. Never a deployment's
        name: that is a tenant's own, and /metrics answers anyone."""
        if self.target.deployment is None:
            return self.model
        return self.worker.model_id if self.worker is not None else None

    @property
    def routing_key(self) -> str | None:
        headers = self.http.headers
        for header in ROUTING_KEY_HEADERS:  # a loop, not a generator: asked per request
            if value := headers.get(header):
                return value
        return None


def request_id_of(request: web.Request, headers: Iterable[str]) -> str:
    """The client's request id (the first of `headers` it sent), or a new one."""
    for header in headers:
        value = request.headers.get(header)
        if value:
            return value[:128]
    return _ids.next()


class RandomIds:
    """128 random bits in hex (as uuid4().hex), cut from a block of os.urandom: one
    system call per 256 ids rather than one per request. A forked child starts a block
    of its own, so no two processes hand out the same ids."""

    BLOCK = 16 * 256

    def __init__(self) -> None:
        self._block = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._block, self._at = b"", 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._block):
            self._block, at = os.urandom(self.BLOCK), 0
        self._at = at + 16
        return self._block[at : at + 16].hex()


_ids = RandomIds()
