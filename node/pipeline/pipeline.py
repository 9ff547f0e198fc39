"""The inference pipeline: every inference entry runs through `Pipeline.serve`.

An entry (an OpenAI route, a deployment's predict, a published model's path)
authenticates, reads the body and builds the `InferenceRequest`; `run` then
takes it through the stages in order, and `serve` records the request
metrics once, around all of it, whatever the outcome: an answer, an error,
or a client that went away (499).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mesh.state import ControlState
from node.auth import Principal
from node.client_gone import CLIENT_CLOSED_REQUEST, final_status
from node.errors import ApiError
from node.limits.admission import Admission
from node.limits.quotas import QuotaEngine
from node.limits.ratelimit import RateLimiter
from node.limits.usage import UsageBook
from node.metrics import Metrics
from node.pipeline.authorize import allowed_workers, served_models, serving_workers
from node.pipeline.limits import admit, enforce_rate_limits, subjects_of, take_quota
from node.pipeline.request import DIRECT, InferenceRequest, Target, request_id_of
from node.pipeline.settle import meter, release_lease, settle
from node.proxy.facts import facts_of, model_of, wants_stream
from node.proxy.forward import Forwarder
from node.routing.selector import PolicySelector
from node.wasm_required import refuse_without_wasm
from node.workers.pool import WorkerPool

if TYPE_CHECKING:
    from node.wasm.hooks import WasmHooks

log = logging.getLogger(__name__)

# Builds the request object, given the time the request entered.
Entry = Callable[[float], Awaitable[InferenceRequest]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """The stages and the parts they use (never the whole node)."""

    pool: WorkerPool
    selector: PolicySelector
    forwarder: Forwarder
    ratelimiter: RateLimiter
    quotas: QuotaEngine
    admission: Admission
    usage: UsageBook
    metrics: Metrics
    state: Callable[[], ControlState]  # this node's replica, as applied now
    model_label: Callable[[str | None], str]  # bounds the `model` label to known models
    request_id_headers: Sequence[str]
    wasm: WasmHooks | None = None  # with --enable-wasm: the middleware modules

    def request(
        self,
        http: web.Request,
        principal: Principal,
        path: str,
        body: bytes,
        data: dict[str, Any],
        started: float,
        target: Target = DIRECT,
    ) -> InferenceRequest:
        """The request object of an entry: `body` goes to the worker's `path` as it is."""
        return InferenceRequest(
            http,
            path,
            principal,
            body,
            data,
            model_of(data),
            wants_stream(data),
            request_id_of(http, self.request_id_headers),
            started,
            target,
        )

    async def serve(self, http: web.Request, route: str, enter: Entry) -> web.StreamResponse:
        """Build the request with `enter`, run it, and count it under `route`."""
        started = time.perf_counter()
        request: InferenceRequest | None = None
        status = 500
        own = True  # the node's own answer (an error it raised), not a worker's
        try:
            request = await enter(started)
            response = await self.run(request)
            status, own = response.status, False
            return response
        except (ApiError, web.HTTPException) as exc:  # aiohttp's own: e.g. 413 on a big body
            status = exc.status
            raise
        finally:
            seconds = time.perf_counter() - started
            status = final_status(http, status)
            if status == CLIENT_CLOSED_REQUEST:
                log.info("client closed %s %s after %.3fs", http.method, http.path, seconds)
            model = request.shown_model if request is not None else None  # once it is served
            ttft = request.first_token_secs if request is not None else None
            self.metrics.request(route, self.model_label(model), status, seconds, ttft, own)

    async def run(self, request: InferenceRequest) -> web.StreamResponse:
        """The stages, in order: WASM OnRequest, workers, authorize, rate limits, quota,
        admission, forward, settle; WASM OnResponse on whatever is answered after OnRequest
        let the request through (the worker's answer or the node's own error)."""
        wasm = self.wasm
        if wasm is None:
            refuse_without_wasm(self.state())
            return await self._stages(request)
        await wasm.on_request(request)  # may reject, or change headers and body
        request.before_reply = partial(wasm.on_response, request)
        try:
            return await self._stages(request)
        except ApiError as exc:
            if request.replied:  # OnResponse ran already: this is its own answer
                raise
            return await wasm.on_error(request, exc)

    async def _stages(self, request: InferenceRequest) -> web.StreamResponse:
        wasm = self.wasm
        target = request.target
        candidates = target.candidates
        if candidates is None:
            candidates = serving_workers(self.pool, request.model)
        request.candidates = allowed_workers(request.principal, candidates, request.model)
        policy = self.selector.policy_for(request.policy_key)
        request.facts = facts_of(
            request.data, request.model, request.routing_key, with_prompt=policy.needs_prompt
        )
        # Each stage is skipped without a coroutine when it has nothing to do (the common
        # case: no rate rule, no quota subject, a free slot).
        if self.ratelimiter.has_rules:
            served = served_models(request.candidates, request.model)
            await enforce_rate_limits(self.ratelimiter, served)
        subjects = subjects_of(self.state(), request)
        quota = await take_quota(self.quotas, subjects) if subjects else None
        if quota is not None:
            request.headers = quota.headers()
        try:
            if not self.admission.take_now():
                await admit(self.admission)
        except BaseException:
            await release_lease(quota)  # refused, or the client left while queued
            raise
        if subjects:
            meter(request)
        try:
            key = request.policy_key
            response = await self.forwarder.forward(
                request, policy, pair=lambda: self.selector.pair_for(key)
            )
            if wasm is not None and isinstance(response, web.Response) and not response.prepared:
                await wasm.on_response(request, response, _body_of(response))
            return response
        finally:
            self.admission.release()
            if quota is not None or subjects:  # else nothing to release or book
                await settle(request, quota, subjects, self.usage)


def _body_of(response: web.Response) -> bytes:
    body = response.body
    return body if isinstance(body, bytes) else b""
