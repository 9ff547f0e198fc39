"""`Idempotency-Key`: a client's name for one write, made the request id of its commands.

Every command carries a request id, and `ControlState.apply` answers an id it
has applied with its first outcome instead of applying it again. Without the
header a node makes a fresh id per command, which makes its own resubmissions
safe. With it, the id comes from the client, so a retry through any node after
an error, a timeout or a lost connection is applied at most once and answered
as the first attempt was.

The id is derived, not taken as sent, so that one client cannot collide with
another's ids, nor one route's with another's:

    request id = "idem-" + sha256(principal id, method, path, key)[:40 hex digits]

and the n-th command a handler commits for one request (n >= 2: a drain of
three members commits three) gets ".n" appended, so a replay of the request
replays each of them. The key must be 1-128 printable ASCII characters.

This module holds the per-request state (`RequestCommits`, found through a
context variable that `committing` sets for each request to a route that may commit
(node/api/register.py puts it around those routes' handlers), so that
`Node.commit`, the one place commands are submitted for a request, reads it
without every handler passing it on) and the rules above.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from node.errors import ApiError

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
REQUEST_ID_HEADER: Final = "Meshgate-Request-Id"  # the request id of the first command
MAX_KEY_LENGTH: Final = 128


class RequestCommits:
    """What `Node.commit` needs to know about the request it commits for."""

    def __init__(self, method: str, path: str, key: str | None) -> None:
        self.method = method
        self.path = path
        self.key = key
        self.commits = 0  # commands committed so far for this request
        self.first_id: str | None = None  # the request id of its first command
        self.replayed = False  # some command was answered from an earlier attempt
        self.task = asyncio.current_task()  # tasks the handler spawns do not count

    def mine(self) -> bool:
        """Is the caller the request's own handler (not a task it started)?"""
        return asyncio.current_task() is self.task

    def next_request_id(self, principal_id: str) -> str | None:
        """The request id of the handler's next command, or None (no key: make one)."""
        if self.key is None or not self.mine():
            return None
        problem = key_problem(self.key)
        if problem:
            raise ApiError(400, f"{HEADER} {problem}", param=HEADER)
        self.commits += 1
        rid = derive(principal_id, self.method, self.path, self.key)
        return rid if self.commits == 1 else f"{rid}.{self.commits}"

    def committed(self, rid: str, *, replayed: bool) -> None:
        """Record a command the handler submitted (whatever became of it)."""
        if self.mine():
            self.first_id = self.first_id or rid
            self.replayed = self.replayed or replayed

    def headers(self) -> dict[str, str]:
        """What the answer tells of the request's commands."""
        headers = {REQUEST_ID_HEADER: self.first_id} if self.first_id else {}
        if self.replayed:
            headers[REPLAYED_HEADER] = "true"
        return headers


_CURRENT: contextvars.ContextVar[RequestCommits | None] = contextvars.ContextVar(
    "meshgate_request_commits", default=None
)


def current() -> RequestCommits | None:
    return _CURRENT.get()


def key_problem(key: str) -> str | None:
    """Why `key` is not a usable Idempotency-Key, or None."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"must be 1-{MAX_KEY_LENGTH} characters"
    if not all(" " <= c <= "~" for c in key):
        return "must be printable ASCII"
    return None


def derive(principal_id: str, method: str, path: str, key: str) -> str:
    """The request id a key names for one caller on one route (see the module docstring)."""
    material = "\n".join((principal_id, method.upper(), path, key)).encode()
    return "idem-" + hashlib.sha256(material).hexdigest()[:40]


RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def committing(handler: RequestHandler) -> RequestHandler:
    """`handler` (a route's, behind its guard) with its commits in a context of their own;
    the answer names the first one's request id (`Meshgate-Request-Id`) and says when one
    was answered from an earlier attempt. Put around the handlers of routes that may commit
    (`Route.may_commit`) when they are installed: reads and inference get none, and pay
    nothing for it on every request."""

    async def in_context(request: web.Request) -> web.StreamResponse:
        commits = RequestCommits(request.method, request.path, request.headers.get(HEADER))
        token = _CURRENT.set(commits)
        try:
            response = await handler(request)
        except ApiError as exc:
            exc.headers = {**exc.headers, **commits.headers()}
            raise
        finally:
            _CURRENT.reset(token)
        if not response.prepared and (told := commits.headers()):  # most commit nothing
            response.headers.update(told)
        return response

    return in_context
