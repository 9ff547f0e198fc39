"""The one path every inference request takes, whichever route it came in on.

auth (done by the caller) → the workers that may serve it, narrowed to the
models the caller's key may use → mesh-wide requests-per-second rules of the
models those workers actually serve → per-key, per-tenant and per-published-
model quotas (with `X-RateLimit-*` headers) → admission (a slot or a 429) →
the forwarder → release the quota lease with the tokens the upstream reported
and book the usage. Used by the OpenAI routes, `POST /api/models/{name}/predict`
and the published models' external paths.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from node.app import Node
from node.auth import Principal
from node.errors import ApiError
from node.limits.admission import Rejected
from node.limits.quotas import Limits, Subject
from node.limits.usage import TokenMeter
from node.proxy.facts import facts_of, wants_stream
from node.proxy.forward import Exchange
from node.workers.worker import Worker

PROMPT_POLICIES = frozenset({"cache_aware", "prefix_hash"})
# Streams that report usage only when asked (`stream_options.include_usage`).
USAGE_STREAMS = frozenset({"/v1/chat/completions", "/v1/completions"})
ROUTING_KEY_HEADERS = ("x-session-id", "x-routing-key")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes when it is not simply "the workers serving its model"."""

    candidates: tuple[Worker, ...] | None = None
    policy_key: str | None = None
    published: dict[str, Any] | None = None  # the publication, for its limits and usage


DIRECT = Target()


def served_model(worker: Worker, requested: str | None) -> str | None:
    """The model a worker would serve a request with: its own id, or (for a worker that
    serves any name) the requested one."""
    return worker.model_id or requested


def _allowed_workers(
    principal: Principal, candidates: tuple[Worker, ...], requested: str | None
) -> tuple[Worker, ...]:
    """Only workers serving a model the caller's key may use (403 when none is left).

    Judged by the model actually served, not the name in the body, so a deployment,
    a publication or `/generate` cannot reach a model the key may not use."""
    allowed = (principal.key or {}).get("models")
    if not allowed:
        return candidates
    permitted = tuple(w for w in candidates if served_model(w, requested) in allowed)
    if not permitted and candidates:
        raise ApiError(403, f"this key may use only: {', '.join(allowed)}", param="model")
    return permitted


def request_id(node: Node, request: web.Request) -> str:
    for header in node.config.request_id_headers:
        value = request.headers.get(header)
        if value:
            return value[:128]
    return uuid.uuid4().hex


_LIMITS: dict[tuple[str, str, int], Limits] = {}


def _limits(kind: str, subject: str, record: dict[str, Any], field: str) -> Limits:
    """Limits of a replicated record, parsed once per record version (hot path)."""
    key = (kind, subject, record.get("version", 0))
    limits = _LIMITS.get(key)
    if limits is None:
        if len(_LIMITS) > 10000:
            _LIMITS.clear()
        limits = _LIMITS[key] = Limits.from_dict(record.get(field) or {})
    return limits


def _subjects(node: Node, principal: Principal, target: Target) -> list[Subject]:
    subjects = []
    key = principal.key
    keys = node.raft.state.api_keys
    # A minted key also spends its ancestors' limits: minting must not multiply a limit.
    while key is not None:
        subjects.append(Subject("key", key["id"], _limits("key", key["id"], key, "limits")))
        key = keys.get(key.get("parent") or "")
    tenant = node.raft.state.tenants.get(principal.tenant or "")
    if tenant is not None:
        name = tenant["name"]
        subjects.append(Subject("tenant", name, _limits("tenant", name, tenant, "limits")))
    if target.published is not None:
        ref = target.published["ref"]
        limits = _limits("model", ref, target.published, "rateLimiting")
        subjects.append(Subject("model", ref, limits))
    return subjects


def _with_stream_usage(body: bytes, data: dict[str, Any]) -> bytes:
    """Ask the worker for a final usage chunk, so a metered stream's tokens are counted.

    Only metered streams (a key, tenant or publication with usage or limits) are
    re-serialised; the client receives the extra usage chunk like any other."""
    options = data.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body
    extra = options if isinstance(options, dict) else {}
    return orjson.dumps({**data, "stream_options": {**extra, "include_usage": True}})


async def run_inference(
    node: Node,
    request: web.Request,
    principal: Principal,
    path: str,
    body: bytes,
    data: dict[str, Any],
    model: str | None,
    started: float,
    target: Target = DIRECT,
) -> web.StreamResponse:
    stream = wants_stream(data)
    # Looked up once, here: a 404 for an unknown model comes before taking a slot.
    candidates = target.candidates
    if candidates is None:
        candidates = node.forwarder.candidates(model)
    candidates = _allowed_workers(principal, candidates, model)
    served = tuple({served_model(w, model): None for w in candidates}) or (model,)
    routing_key = next((v for h in ROUTING_KEY_HEADERS if (v := request.headers.get(h))), None)
    policy = node.selector.record_for(target.policy_key or model)["policy"]
    facts = facts_of(data, model, routing_key, with_prompt=policy in PROMPT_POLICIES)
    decision = await node.ratelimiter.admit(served)
    if not decision.allowed:
        retry_after = max(1, math.ceil(decision.retry_after))
        scope = "all requests" if decision.scope == "*" else f"model {decision.scope!r}"
        raise ApiError(
            429,
            f"the mesh-wide rate limit for {scope} is exhausted; retry after {retry_after}s",
            code="rate_limited",
            headers={"Retry-After": str(retry_after)},
        )
    subjects = _subjects(node, principal, target)
    quota = await node.quotas.admit(subjects) if subjects else None
    headers = quota.headers() if quota is not None else {}
    if quota is not None and not quota.allowed:
        retry_after = max(1, math.ceil(quota.retry_after))
        raise ApiError(
            429,
            f"quota exceeded ({quota.refused_by}); retry after {retry_after}s",
            code="quota_exceeded",
            headers={"Retry-After": str(retry_after), **headers},
        )
    try:
        await node.admission.acquire()
    except Rejected as exc:
        if quota is not None and quota.lease is not None:
            await quota.lease.release(0)
        raise ApiError(
            429,
            f"the node is at capacity ({exc.reason.replace('_', ' ')}); retry "
            f"after {exc.retry_after}s",
            code=exc.reason,
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    meter = TokenMeter() if subjects else None
    if meter is not None and stream and path in USAGE_STREAMS:
        body = _with_stream_usage(body, data)
    try:
        exchange = Exchange(
            request,
            path,
            body,
            model,
            stream,
            facts,
            request_id(node, request),
            started,
            candidates=candidates,
            policy_key=target.policy_key,
            headers=headers,
            meter=meter,
        )
        return await node.forwarder.forward(exchange)
    finally:
        node.admission.release()
        if quota is not None and quota.lease is not None:
            await quota.lease.release(meter.tokens if meter else 0)
        if subjects:
            node.usage.record((f"{s.kind}:{s.id}" for s in subjects), meter.tokens if meter else 0)
