"""Which workers may serve a request: those serving its model, narrowed to the caller's key.

The key's model list is judged by the model a worker actually serves, not the
name in the body, so a deployment, a publication or `/generate` cannot reach
a model the key may not use.
"""

from __future__ import annotations

from node.auth import Principal
from node.errors import ApiError
from node.workers.pool import WorkerPool
from node.workers.worker import Worker


def serving_workers(pool: WorkerPool, model: str | None) -> tuple[Worker, ...]:
    """Every worker that serves `model` (404 when none does): looked up once, before a
    slot or a quota is taken."""
    serving = pool.serving(model)
    if serving is None:
        available = ", ".join(pool.models()) or "none"
        raise ApiError(
            404,
            f"model {model!r} is not served by any worker (available: {available})",
            code="model_not_found",
            param="model",
        )
    return serving


def served_model(worker: Worker, requested: str | None) -> str | None:
    """The model a worker would serve a request with: its own id, or (for a worker that
    serves any name) the requested one."""
    return worker.model_id or requested


def key_models(principal: Principal | None) -> list[str] | None:
    """The models the caller's key may use; None when it may use any (or there is no key)."""
    allowed = ((principal.key if principal is not None else None) or {}).get("models")
    return list(allowed) if allowed else None


def allowed_workers(
    principal: Principal, candidates: tuple[Worker, ...], requested: str | None
) -> tuple[Worker, ...]:
    """Only workers serving a model the caller's key may use (403 when none is left)."""
    allowed = key_models(principal)
    if allowed is None:
        return candidates
    permitted = tuple(w for w in candidates if served_model(w, requested) in allowed)
    if not permitted and candidates:
        raise ApiError(403, f"this key may use only: {', '.join(allowed)}", param="model")
    return permitted


def served_models(candidates: tuple[Worker, ...], requested: str | None) -> tuple[str | None, ...]:
    """The models the candidates would serve the request with (for per-model rate limits)."""
    return tuple({served_model(w, requested): None for w in candidates}) or (requested,)
