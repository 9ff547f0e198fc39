"""The limits a request must pass before it reaches a worker, one stage each.

1. the mesh-wide requests-per-second rules of the models the request may be
   served with (429 `rate_limited`);
2. the quotas of the caller's key (and every key it was minted from), its
   tenant and the published model it came through, with `X-RateLimit-*`
   headers (429 `quota_exceeded`); the lease taken is released when the
   request settles;
3. admission: a slot on this node, or a 429 once the queue is full or the
   wait too long.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mesh.state import ControlState
from node.auth import OPEN_CALLER, Principal
from node.errors import ApiError
from node.limits.admission import Admission, Rejected
from node.limits.quotas import CLIENT, Limits, QuotaDecision, QuotaEngine, Subject
from node.limits.ratelimit import RateLimiter
from node.pipeline.request import InferenceRequest


async def enforce_rate_limits(ratelimiter: RateLimiter, served: Sequence[str | None]) -> None:
    decision = await ratelimiter.admit(served)
    if not decision.allowed:
        scope = "all requests" if decision.scope == "*" else f"model {decision.scope!r}"
        message = f"the mesh-wide rate limit for {scope} is exhausted"
        raise _retry_later(message, "rate_limited", decision.retry_after)


def caller_subjects(state: ControlState, principal: Principal) -> list[Subject]:
    """The caller's key and the keys it was minted from (minting must not multiply a
    limit), and its tenant."""
    subjects = []
    key = principal.key
    keys = state.api_keys
    while key is not None:
        subjects.append(_subject("key", key["id"], key, "limits"))
        key = keys.get(key.get("parent") or "")
    tenant = state.tenants.get(principal.tenant or "")
    if tenant is not None:
        subjects.append(_subject("tenant", tenant["name"], tenant, "limits"))
    return subjects


def subjects_of(state: ControlState, request: InferenceRequest) -> list[Subject]:
    """Whose quotas the request spends: the caller's (`caller_subjects`), and the
    publication it came through."""
    subjects = caller_subjects(state, request.principal)
    published = request.target.published
    if published is not None:
        ref = published["ref"]
        subject = _subject("model", ref, published, "rateLimiting")
        caller = request.principal
        if caller.kind == OPEN_CALLER:  # an open publication: its limits hold per address
            subjects.append(Subject("model", ref, Limits()))  # its usage, as a whole
            subjects.append(Subject(CLIENT, f"{ref}@{caller.id}", subject.limits))
        else:
            subjects.append(subject)
    return subjects


_SUBJECTS: dict[tuple[str, str, int], Subject] = {}


def _subject(kind: str, name: str, record: dict[str, Any], field: str) -> Subject:
    """A replicated record as a quota subject, its limits parsed, made once per record
    version (hot path: a frozen dataclass and its checks cost microseconds each)."""
    key = (kind, name, record.get("version", 0))
    subject = _SUBJECTS.get(key)
    if subject is None:
        if len(_SUBJECTS) > 10000:
            _SUBJECTS.clear()
        limits = Limits.from_dict(record.get(field) or {})
        subject = _SUBJECTS[key] = Subject(kind, name, limits)
    return subject


async def take_quota(quotas: QuotaEngine, subjects: Sequence[Subject]) -> QuotaDecision | None:
    """A lease on every subject's quota (None when nothing limits the request), or a 429."""
    if not subjects:
        return None
    quota = await quotas.admit(subjects)
    if not quota.allowed:
        raise _retry_later(
            f"quota exceeded ({quota.refused_by})",
            "quota_exceeded",
            quota.retry_after,
            quota.headers(),
        )
    return quota


async def admit(admission: Admission) -> None:
    """A slot on this node, or a 429 saying when to come back."""
    try:
        await admission.acquire()
    except Rejected as exc:
        reason = exc.reason.replace("_", " ")
        raise _retry_later(
            f"the node is at capacity ({reason})", exc.reason, exc.retry_after
        ) from None


def _retry_later(
    message: str, code: str, seconds: float, headers: dict[str, str] | None = None
) -> ApiError:
    """A 429 that says when to come back (whole seconds, at least one)."""
    retry_after = max(1, math.ceil(seconds))
    return ApiError(
        429,
        f"{message}; retry after {retry_after}s",
        code=code,
        headers={"Retry-After": str(retry_after), **(headers or {})},
    )
