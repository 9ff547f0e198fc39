"""The two halves of a prefill/decode (PD) request over HTTP, as SGLang's router sends them.

The gateway sends the same body to the prefill and to the decode worker at once,
each with SGLang's bootstrap fields: `bootstrap_host` (the prefill worker's host),
`bootstrap_port` (its KV bootstrap server's port, or null when unknown) and
`bootstrap_room` (a random 63-bit integer shared by both halves; SGLang keeps it
as an int64). The decode worker fetches the KV cache from the prefill's bootstrap
server and answers the client; the prefill's answer is drained in the background.
A batch `/generate` (`text` or `input_ids` a list of prompts) gets one list entry
per prompt, as SGLang's router does. `PrefillWait` is what both transports share
of a prefill half (node/grpcproxy/pd.py is the gRPC one).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from node.proxy.failures import UPSTREAM_ERRORS, did_not_answer, log_failure
from node.proxy.upstream import is_redirect
from node.proxy.worker_http import WorkerHttp, WorkerResponse
from node.workers.worker import Worker

log = logging.getLogger(__name__)

MAX_KEPT_BYTES = 16 * 2**20  # a prefill's answer kept for its input logprobs, at most
# Statuses of a prefill that mean its half failed (the pair is retried without it);
# any other 4xx is the request's fault, and the decode half says so to the client.
PREFILL_FAILED = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")


def new_room(bits: int = 63) -> int:
    """A random room in [0, 2**bits - 1] (SGLang keeps it as an int64)."""
    return secrets.randbits(bits)


def bootstrap_port(worker: Worker) -> int | None:
    """The prefill worker's bootstrap port: its own field, else what discovery read."""
    port = worker.record.get("bootstrap_port")
    if port is None:
        port = (worker.record.get("metadata") or {}).get("disaggregation_bootstrap_port")
    return port if isinstance(port, int) and not isinstance(port, bool) else None


def _batch_size(data: dict[str, Any]) -> int | None:
    text, ids = data.get("text"), data.get("input_ids")
    if isinstance(text, list):
        return len(text)
    if isinstance(ids, list) and ids and isinstance(ids[0], list):
        return len(ids)
    return None


def bootstrap_fields(prefill: Worker, data: dict[str, Any]) -> dict[str, Any]:
    """The fields both halves get, for a single request or a batch."""
    host = urlsplit(prefill.url).hostname or ""
    port = bootstrap_port(prefill)
    size = _batch_size(data)
    if size is None:
        return {"bootstrap_host": host, "bootstrap_port": port, "bootstrap_room": new_room()}
    return {
        "bootstrap_host": [host] * size,
        "bootstrap_port": [port] * size,
        "bootstrap_room": [new_room() for _ in range(size)],
    }


def wants_input_logprobs(path: str, data: dict[str, Any]) -> bool:
    """A whole `/generate` asking for logprobs: the prompt's are the prefill's to give."""
    return path == "/generate" and bool(data.get("return_logprob")) and not data.get("stream")


def merged_logprobs(prefill: bytes | None, decode: bytes) -> bytes:
    """The decode's `/generate` answer with the prefill's `input_token_logprobs` put first
    (SGLang's router does the same); the decode's answer unchanged if either is not
    what it should be."""
    try:
        first, answer = orjson.loads(prefill or b"null"), orjson.loads(decode)
    except orjson.JSONDecodeError:
        return decode
    single = isinstance(answer, dict)
    if single and isinstance(first, dict):
        first, answer = [first], [answer]
    if not (isinstance(first, list) and isinstance(answer, list)) or len(first) != len(answer):
        return decode
    merged = False
    for given, into in zip(first, answer, strict=True):
        found = given.get("meta_info") if isinstance(given, dict) else None
        meta = into.get("meta_info") if isinstance(into, dict) else None
        logprobs = found.get("input_token_logprobs") if isinstance(found, dict) else None
        if isinstance(logprobs, list) and isinstance(meta, dict):
            own = meta.get("input_token_logprobs")
            meta["input_token_logprobs"] = logprobs + (own if isinstance(own, list) else [])
            merged = True
    if not merged:
        return decode
    return orjson.dumps(answer[0] if single else answer)


def with_fields(body: bytes, fields: dict[str, Any]) -> bytes:
    """`body` (a JSON object) with `fields` set at its top level."""
    return orjson.dumps({**orjson.loads(body), **fields})


class PrefillWait:
    """What the decode half of an attempt knows of its prefill half, on either transport.

    `answered()` says, once the prefill's first answer is known, whether its half
    failed (a phrase for the client) or not (None). The prefill's task (kept in
    `background` while it drains) settles its load and circuit breaker, whatever
    happens to the decode half."""

    def __init__(self, worker: Worker, background: set[asyncio.Task[None]]) -> None:
        self.worker = worker
        self.task: asyncio.Task[None] | None = None
        self._background = background
        self._answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def _start(self, run: Awaitable[None]) -> None:
        self.task = asyncio.ensure_future(run)
        self._background.add(self.task)
        self.task.add_done_callback(self._background.discard)

    async def answered(self) -> str | None:
        return await asyncio.shield(self._answer)

    @property
    def failed(self) -> bool:
        return self._answer.done() and self._answer.result() is not None

    def cancel(self) -> None:
        """Stop waiting for the prefill (its decode half failed or the client left)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def alongside(
        self, sending: Awaitable[T], discard: Callable[[T], object] = lambda _: None
    ) -> T | str:
        """The decode half's first answer once this prefill has answered too; or the
        prefill's failure as soon as it fails (a real decode would wait for its KV cache
        until its own timeout, so its request is cancelled; an answer nobody reads is
        `discard`ed). The decode's own errors propagate."""
        sent = asyncio.ensure_future(sending)
        answer = asyncio.ensure_future(self.answered())
        handed = False
        try:
            await asyncio.wait((sent, answer), return_when=asyncio.FIRST_COMPLETED)
            if answer.done() and (problem := answer.result()) is not None:
                return problem
            resp = await sent
            problem = await answer
            if problem is not None:
                return problem
            handed = True
            return resp
        finally:
            if not sent.done():
                sent.cancel()
            elif not handed and not sent.cancelled() and sent.exception() is None:
                discard(sent.result())
            if not answer.done():
                answer.cancel()

    def _settle_answer(self, problem: str | None) -> None:
        if not self._answer.done():
            self._answer.set_result(problem)


class PrefillHalf(PrefillWait):
    """The prefill half of one HTTP attempt: sent at once, its answer drained."""

    def __init__(
        self,
        client: WorkerHttp,
        worker: Worker,
        path: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        background: set[asyncio.Task[None]],
        keep: bool = False,
    ) -> None:
        super().__init__(worker, background)
        self.keeps = keep  # its answer is kept (for the input logprobs), not just drained
        self.kept: bytes | None = None
        self._start(self._run(client, path, body, headers, timeout))

    async def merge_logprobs(self, decode: bytes) -> bytes:
        """The decode's whole answer with this prefill's input logprobs, once it has them."""
        if self.task is not None:
            await asyncio.wait((self.task,))
        return merged_logprobs(self.kept, decode)

    async def _run(
        self,
        client: WorkerHttp,
        path: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
    ) -> None:
        worker = self.worker
        headers = {**headers, **worker.auth_headers}
        worker.load += 1
        worker.breaker.on_attempt()
        verdict: bool | None = None
        try:
            async with await client.post(worker.base_url + path, body, headers, timeout) as resp:
                if resp.status in PREFILL_FAILED or is_redirect(resp.status):
                    verdict = resp.status < 500 and not is_redirect(resp.status)
                    log.warning("prefill worker %s answered %s to %s", worker.id, resp.status, path)
                    self._settle_answer(f"prefill worker {worker.id} answered {resp.status}")
                    return
                self._settle_answer(None)
                if self.keeps:
                    self.kept = await _read_at_most(resp, MAX_KEPT_BYTES)
                while await resp.readany():  # drained, never kept
                    pass
                verdict = True
        except UPSTREAM_ERRORS as exc:
            verdict = False
            log_failure(worker.id, worker.url, f"prefill POST {path}", exc)
            self._settle_answer(f"prefill worker {worker.id} {did_not_answer(exc)}")
        finally:
            worker.load -= 1
            worker.breaker.settle(verdict)
            self._settle_answer("the prefill half was cancelled")


async def _read_at_most(resp: WorkerResponse, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` (the rest is left to drain)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
