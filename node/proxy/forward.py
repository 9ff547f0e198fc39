"""Forward one inference request to a worker: pick, send, retry, relay.

The order of events for a request:
1. of the candidates the pipeline found (workers serving the model that the
   caller may use), those ready, healthy and whose circuit admits traffic;
   the policy the pipeline chose picks one;
2. the original body bytes go upstream (nothing is re-serialised);
3. a connection error, a retryable status (408/429/5xx), or an upstream that
   dies before its first byte is retried on another worker after an
   exponential backoff with jitter — but only while nothing has reached the
   client;
4. the response is relayed: whole for plain requests, chunk by chunk for
   streams (`node/proxy/relay.py`). A stream that breaks after its first byte ends with an explicit
   SSE `error` event, so the client knows it is incomplete.
A model served by prefill/decode pairs takes one worker of each kind per attempt
(`_forward_pair`; docs/pd.md): the prefill half is sent alongside and drained,
the decode half is relayed as above.
A client that disconnects cancels the handler, which closes the upstream
connection and so cancels the generation; either way the request is counted
as 499 (`node.client_gone`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from node.errors import ApiError
from node.grpcproxy.build import ROUTES as ENGINE_ROUTES
from node.grpcproxy.forward import EngineForwarder, Retry
from node.grpcproxy.pd import EnginePrefill
from node.metrics import Metrics
from node.outparse.choice import NO_PARSERS, ParserSettings
from node.outparse.plan import plan_for, worker_body
from node.outparse.rewrite import StreamRewriter, rewrite_whole
from node.pipeline.request import InferenceRequest
from node.proxy.failures import (
    REDIRECTED,
    UPSTREAM_ERRORS,
    did_not_answer,
    log_failure,
)
from node.proxy.pd import (
    PrefillHalf,
    PrefillWait,
    bootstrap_fields,
    wants_input_logprobs,
    with_fields,
)
from node.proxy.relay import relay_stream
from node.proxy.upstream import is_redirect
from node.proxy.worker_http import WorkerHttp, WorkerResponse
from node.routing.base import Policy
from node.workers.pairs import (
    DECODE,
    PREFILL,
    Roles,
    missing_half,
    pairable,
    partners,
    split_roles,
)
from node.workers.worker import Worker

log = logging.getLogger(__name__)

# What one attempt ends with: a response, or a phrase saying what went wrong.
Outcome = web.StreamResponse | str
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Request headers passed to the worker besides content-type (never the client's credentials).
PASSED_HEADERS = ("accept", "anthropic-version", "anthropic-beta", "openai-beta")


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 30.0
    multiplier: float = 1.5
    jitter: float = 0.2

    def delay(self, retry: int) -> float:
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


class Forwarder:
    def __init__(
        self,
        client: WorkerHttp,
        retry: RetrySettings,
        request_timeout: float,
        metrics: Metrics,
        parsers: ParserSettings = NO_PARSERS,
        engine: EngineForwarder | None = None,
    ) -> None:
        self.client = client
        self.retry = retry
        self.timeout = request_timeout  # bounds each attempt, its answer's body included
        self.metrics = metrics
        self.parsers = parsers  # --reasoning-parser and --tool-call-parser, as now in force
        # gRPC workers' attempts (the same parsers, as now in force).
        self.engine = engine or EngineForwarder(metrics, request_timeout)
        self.engine.parsers = lambda: self.parsers
        self._background: set[asyncio.Task[None]] = set()  # prefill halves still draining

    async def forward(
        self,
        ex: InferenceRequest,
        policy: Policy,
        pair: Callable[[], tuple[Policy, Policy]] | None = None,
    ) -> web.StreamResponse:
        """Send the request to the candidate `policy` picks, retrying on others; relay the
        answer. A model served by prefill/decode pairs goes to one of each, each half
        picked by its own instance of the policy (`pair`)."""
        roles = split_roles(ex.candidates)
        if roles.use_pairs():
            return await self._forward_pair(ex, roles, pair() if pair else (policy, policy))
        serving = _speaking(ex, roles.regular)
        if policy.needs_prompt and any(w.connection_mode == "grpc" for w in serving):
            # The engine's cache holds token ids: prefixes are matched on those.
            ids = await self.engine.prompt_ids(ex, serving)
            if ids:
                ex.facts = dataclasses.replace(ex.facts, prompt_ids=ids)
        tried: set[str] = set()

        async def once(attempt: int) -> Outcome | None:
            routable = [w for w in serving if w.routable and self._speaks(w)]
            fresh = [w for w in routable if w.id not in tried] or routable
            if not fresh:
                return None
            worker = _pick(fresh, policy, ex)
            ex.worker, ex.attempts = worker, attempt
            tried.add(worker.id)
            return await self._attempt(ex, worker)

        return await self._retrying(ex, once)

    async def _forward_pair(
        self, ex: InferenceRequest, roles: Roles, policies: tuple[Policy, Policy]
    ) -> web.StreamResponse:
        """One prefill and one decode worker (on the prefill's transport) per attempt; a
        failed half is not tried again while another worker of its kind is left."""
        problem = missing_half(ex.model, roles)
        if problem is not None:
            raise ApiError(503, problem, code="no_pd_pair", headers={"Retry-After": "1"})
        tried: dict[str, set[str]] = {PREFILL: set(), DECODE: set()}

        def choose(workers: Iterable[Worker], policy: Policy, kind: str) -> Worker | None:
            routable = [w for w in workers if pairable(w) and self._speaks(w)]
            fresh = [w for w in routable if w.id not in tried[kind]] or routable
            return _pick(fresh, policy, ex) if fresh else None

        async def once(attempt: int) -> Outcome | None:
            paired = [w for w in roles.prefill if partners(roles.decode, w)]
            prefill = choose(paired, policies[0], PREFILL)
            if prefill is None:
                return None
            decode = choose(partners(roles.decode, prefill), policies[1], DECODE)
            if decode is None:
                return None
            ex.worker, ex.attempts = decode, attempt
            ex.headers["X-Meshgate-Prefill-Worker"] = prefill.id
            half: PrefillWait
            if prefill.connection_mode == "grpc":
                half = EnginePrefill(
                    prefill, self.engine.links, self.engine.timeout, self._background
                )
                running = self._engine_attempt(ex, decode, half)
            else:
                half, body = self._http_prefill(ex, prefill)
                running = self._attempt(ex, decode, half, body)
            try:
                outcome = await running
            except BaseException:
                half.cancel()  # the client left
                raise
            if isinstance(outcome, web.StreamResponse) and not isinstance(outcome, _Retryable):
                return outcome  # the prefill drains on its own
            if half.failed:
                tried[PREFILL].add(prefill.id)
            else:
                tried[DECODE].add(decode.id)
                half.cancel()
            return outcome

        return await self._retrying(ex, once, "no prefill/decode pair is ready")

    def _http_prefill(self, ex: InferenceRequest, prefill: Worker) -> tuple[PrefillHalf, bytes]:
        """The HTTP prefill half, sent at once, and the body (with the bootstrap fields)
        its decode half gets too."""
        body = with_fields(worker_body(ex.body, ex.data), bootstrap_fields(prefill, ex.data))
        keep = wants_input_logprobs(ex.path, ex.data)
        headers = self._headers(ex, None)
        half = PrefillHalf(
            self.client, prefill, ex.path, body, headers, self.timeout, self._background, keep
        )
        return half, body

    async def _retrying(
        self,
        ex: InferenceRequest,
        once: Callable[[int], Awaitable[Outcome | None]],
        idle: str = "no worker is ready",
    ) -> web.StreamResponse:
        """Call `once` (one attempt; None when no worker is left) until an answer, with the
        retry budget and backoff; the last retryable answer or a 503 when none came."""
        failure = idle
        last_response: web.Response | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            outcome = await once(attempt)
            if outcome is None:
                break
            # Exact types: a response is a MutableMapping, so isinstance takes the slow path.
            if type(outcome) is str:
                failure, kind = outcome, "error"
            elif type(outcome) is _Retryable:
                last_response = outcome
                failure, kind = f"worker answered {last_response.status}", "status"
            else:
                return cast(web.StreamResponse, outcome)
            if attempt < self.retry.max_attempts:
                self.metrics.retry(ex.path, kind)
                await asyncio.sleep(self.retry.delay(attempt))
        if last_response is not None:
            return last_response
        model = f" for model {ex.model!r}" if ex.model else ""
        raise ApiError(
            503,
            f"no healthy worker could serve the request{model}: {failure}",
            code="no_healthy_worker",
            headers={"Retry-After": "1"},
        )

    def _headers(self, ex: InferenceRequest, worker: Worker | None) -> dict[str, str]:
        """The headers a worker gets: content type, request id, the passed client headers
        and the worker's own credential (never the client's)."""
        headers = {
            "Content-Type": ex.http.headers.get("Content-Type", "application/json"),
            "X-Request-Id": ex.request_id,
        }
        if worker is not None:
            headers.update(worker.auth_headers)
        for name in PASSED_HEADERS:
            value = ex.http.headers.get(name)
            if value is not None:
                headers[name] = value
        if ex.header_edits:
            auth = worker.auth_headers if worker is not None else {}
            headers = with_edits(headers, ex.header_edits, auth)
        return headers

    async def _attempt(
        self,
        ex: InferenceRequest,
        worker: Worker,
        prefill: PrefillHalf | None = None,
        sent: bytes | None = None,
    ) -> Outcome:
        """One try on one worker: a response to return, a `_Retryable`, or what went wrong
        (a fixed phrase for the client; the detail goes to the log). For the decode half
        of a PD pair, `sent` is the body with the bootstrap fields and the answer counts
        only once its `prefill` half has answered too."""
        if worker.connection_mode == "grpc":
            return await self._engine_attempt(ex, worker)
        headers = self._headers(ex, worker)
        worker.load += 1
        worker.breaker.on_attempt()
        # True: the worker answered; False: it failed; None: we never found out (client left).
        verdict: bool | None = None
        resp: WorkerResponse | None = None
        try:
            plan = plan_for(self.parsers, ex.path, ex.data, worker.record, worker.model_id)
            body = sent or (ex.body if plan is None else worker_body(ex.body, ex.data))
            sending = self.client.post(worker.base_url + ex.path, body, headers, self.timeout)
            if prefill is None:
                resp = await sending
            else:
                got = await prefill.alongside(sending, WorkerResponse.close)
                if isinstance(got, str):
                    return got  # the prefill half failed; the decode half was not at fault
                resp = got
            if resp.status in RETRYABLE_STATUSES:
                body = await resp.read()
                verdict = resp.status < 500
                return _Retryable(resp.status, body, resp.content_type, ex.reply_headers(worker.id))
            if is_redirect(resp.status):
                verdict = False
                log.warning(
                    "worker %s (%s) answered %s to %s", worker.id, worker.url, resp.status, ex.path
                )
                return f"worker {worker.id}: {REDIRECTED}"
            if ex.stream and resp.status < 300:
                first = await resp.readany()
                if not first:
                    verdict = False
                    return f"worker {worker.id}: its stream ended before its first byte"
                rewriter = StreamRewriter(plan, self.metrics.parse_failed) if plan else None
                out, verdict = await relay_stream(
                    ex, worker, resp, first, self.metrics.first_token, rewriter
                )
                return out
            body = await resp.read()
            verdict = resp.status < 500
            if prefill is not None and prefill.keeps and resp.status < 300:
                body = await prefill.merge_logprobs(body)
            if ex.meter is not None and resp.status < 300:
                ex.meter.from_body(body)
            if plan is not None and resp.status < 300:
                body = rewrite_whole(body, plan, self.metrics.parse_failed)
            return self._whole(ex, worker, resp, body)
        except UPSTREAM_ERRORS as exc:
            verdict = False
            log_failure(worker.id, worker.url, f"POST {ex.path}", exc)
            return f"worker {worker.id} {did_not_answer(exc)}"
        finally:
            worker.load -= 1
            worker.breaker.settle(verdict)
            if resp is not None:
                resp.close()

    def _speaks(self, worker: Worker) -> bool:
        """HTTP, or gRPC with a channel to the worker (the worker client's links)."""
        return worker.connection_mode != "grpc" or self.engine.serves(worker)

    async def _engine_attempt(
        self, ex: InferenceRequest, worker: Worker, prefill: EnginePrefill | None = None
    ) -> web.StreamResponse | str:
        """One try on a gRPC worker (the decode half, with a `prefill`), counted by its
        breaker as an HTTP one is."""
        worker.load += 1
        worker.breaker.on_attempt()
        verdict: bool | None = None
        try:
            outcome, verdict = await self.engine.attempt(ex, worker, prefill)
        finally:
            worker.load -= 1
            worker.breaker.settle(verdict)
        if isinstance(outcome, Retry):
            headers = ex.reply_headers(worker.id)
            return _Retryable(outcome.status, outcome.body, "application/json", headers)
        return outcome

    def _whole(
        self, ex: InferenceRequest, worker: Worker, resp: WorkerResponse, body: bytes
    ) -> web.Response:
        return web.Response(
            status=resp.status,
            body=body,
            headers={
                "Content-Type": resp.content_type or "application/json",
                **ex.reply_headers(worker.id),
            },
        )


# Headers a WASM module may not set for a worker: the message's framing and the hop's own.
FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authorization",
    }
)


def with_edits(
    headers: dict[str, str], edits: dict[str, str | None], auth: dict[str, str]
) -> dict[str, str]:
    """The headers for a worker with a WASM module's edits (None removes one). The
    worker's own credentials always win, whatever the case of their names, and a module
    never sets framing headers, a name that is not a token or a value with a line break."""
    credentials = {name.lower() for name in auth}
    fixed = credentials | FRAMING_HEADERS
    kept = {k: v for k, v in headers.items() if k.lower() not in edits.keys() | credentials}
    for name, value in edits.items():
        if value is not None and name.lower() not in fixed and header_ok(name, value):
            kept[name] = value
    return {**kept, **auth}


def header_value_ok(value: str) -> bool:
    """No line break or NUL: such a value would split or end the header block."""
    return not any(c in value for c in "\r\n\0")


def header_ok(name: str, value: str) -> bool:
    """A name that is an HTTP token (no space, colon or line break) and a value that
    cannot split the header block: anything else the worker client would refuse."""
    return TOKEN.fullmatch(name) is not None and header_value_ok(value)


TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _pick(fresh: list[Worker], policy: Policy, ex: InferenceRequest) -> Worker:
    return fresh[policy.select(fresh, ex.facts)] if len(fresh) > 1 else fresh[0]


class _Retryable(web.Response):
    """A retryable upstream answer, kept to return as-is if every retry fails too (with
    the headers of any worker's answer)."""

    def __init__(
        self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]
    ) -> None:
        super().__init__(
            status=status,
            body=body,
            headers={"Content-Type": content_type or "application/json", **headers},
        )


def _speaking(ex: InferenceRequest, serving: tuple[Worker, ...]) -> tuple[Worker, ...]:
    """The workers whose protocol serves the route: gRPC engines serve only ENGINE_ROUTES."""
    if ex.path in ENGINE_ROUTES:
        return serving
    speaking = tuple(w for w in serving if w.connection_mode != "grpc")
    if serving and not speaking:
        raise ApiError(
            400,
            f"model {ex.model!r} is served only by gRPC workers, which do not serve "
            f"{ex.path} (they serve {', '.join(ENGINE_ROUTES)}); add an HTTP worker for it",
            code="route_not_served_over_grpc",
        )
    return speaking
