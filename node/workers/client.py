"""The one way a node calls a worker outside a proxied inference request.

Health checks, discovery, and the fan-outs of the API (`/flush_cache`,
`/get_loads`, `/get_server_info`, `/get_model_info`, `/health_generate`,
engine metrics) all ask a worker something small and read the answer whole.
Each used to write that call out, and each copy had to remember the same
rules; here they are kept once:

* the worker's credential is sent as its `Target` says (opened once from the
  sealed record by `credentials.CredentialBox`), never put in a URL;
* every call has a total timeout, given by the caller (settings may change
  at runtime);
* the answer is read up to `max_body` bytes: a worker (or whatever answers at
  its address) cannot make the node buffer without bound;
* redirects are never followed (`Upstream`), and a 3xx is reported as such;
* a failure reaches the caller as `WorkerCallFailed`, whose text is a fixed
  phrase (`proxy.failures`) that may be shown to a client; the detail goes to
  the debug log only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson

from node.proxy.failures import REDIRECTED, TOO_LARGE, did_not_answer
from node.proxy.upstream import Upstream, is_redirect
from node.workers.credentials import Target

log = logging.getLogger(__name__)

MAX_BODY: Final = 8 * 1024 * 1024  # bytes read of an answer (engine metrics are the largest)


class WorkerCallFailed(Exception):
    """The worker did not answer, or answered more than may be read; str() is a fixed phrase."""

    @property
    def detail(self) -> BaseException:
        """The underlying failure, for the operator's log (never shown to a client)."""
        return self.__cause__ or self


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status < 300

    @property
    def redirected(self) -> bool:
        return is_redirect(self.status)

    def problem(self, what: str) -> str | None:
        """Why the answer is not a success, as a fixed phrase naming `what`; None if it is."""
        if self.redirected:
            return f"{what} answered {self.status}: {REDIRECTED}"
        if not self.ok:
            return f"{what} answered {self.status}"
        return None

    def json(self) -> Any:
        """The body as JSON; None when it is empty or not JSON."""
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(self.body) if self.body else None
        return None

    def text(self, limit: int | None = None) -> str:
        text = self.body.decode(errors="replace")
        return text if limit is None else text[:limit]


class WorkerClient:
    """Small calls to workers over the node's one upstream session."""

    def __init__(self, session: Upstream, max_body: int = MAX_BODY) -> None:
        self.session = session
        self.max_body = max_body

    async def get(self, target: Target, path: str, *, timeout: float) -> Answer:
        return await self.call("GET", target, path, timeout=timeout)

    async def call(self, method: str, target: Target, path: str, *, timeout: float) -> Answer:
        """Send `method path` to the worker with its credential and read the whole answer."""
        url = target.url + path
        try:
            async with self.session.request(
                method,
                url,
                headers=target.headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                return Answer(resp.status, await self._read(resp))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("%s %s: %s: %s", method, url, type(exc).__name__, exc)
            raise WorkerCallFailed(did_not_answer(exc)) from exc

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_body:
            raise WorkerCallFailed(TOO_LARGE)
        body = bytearray()
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) > self.max_body:
                raise WorkerCallFailed(TOO_LARGE)
        return bytes(body)
