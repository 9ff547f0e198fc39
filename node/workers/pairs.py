"""Prefill/decode (PD) disaggregation: which workers form pairs, and whether a model can
be served by one.

A worker's `worker_type` is `regular`, `prefill` or `decode`. Prefill and decode
workers are never used alone: a request goes to one prefill and one decode worker
together (SGLang's PD disaggregation). The rule for a model that has both kinds:
its PD pairs serve it while at least one routable prefill and one routable decode
exist; otherwise its regular workers do. With no regular worker and no complete
pair, the request gets a 503 naming the missing half (`missing_half`).

Both halves of a pair speak the same transport: HTTP with HTTP (SGLang's bootstrap
fields in the JSON body), gRPC with gRPC (`DisaggregatedParams` in the
`GenerateRequest`), as SGLang's router has one PD router per transport. A prefill
over one transport and a decode over the other never pair; a model with only such
halves gets the 503, saying so.

Pure functions of the workers (no I/O), shared by the HTTP forwarder, the gRPC
path and the `/workers` views.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.workers.worker import Worker

PREFILL, DECODE, REGULAR = "prefill", "decode", "regular"


def pairable(worker: Worker) -> bool:
    """May the worker be half of a pair now (with a partner on its transport)?"""
    return worker.routable


def transports(workers: Iterable[Worker]) -> set[str]:
    """The transports (`connection_mode`) of the pairable workers among `workers`."""
    return {w.connection_mode for w in workers if pairable(w)}


def partners(decode: Iterable[Worker], prefill: Worker) -> list[Worker]:
    """The pairable decode workers that may pair with `prefill` (its transport)."""
    return [w for w in decode if pairable(w) and w.connection_mode == prefill.connection_mode]


@dataclass(frozen=True, slots=True)
class Roles:
    """Candidate workers split by `worker_type` (each part keeps the candidates' order)."""

    regular: tuple[Worker, ...]
    prefill: tuple[Worker, ...]
    decode: tuple[Worker, ...]

    @property
    def disaggregated(self) -> bool:
        """Are there prefill or decode workers among the candidates?"""
        return bool(self.prefill or self.decode)

    def pair_routable(self) -> bool:
        """Is there a routable prefill and a routable decode worker on one transport?"""
        return bool(transports(self.prefill) & transports(self.decode))

    def use_pairs(self) -> bool:
        """The rule: pairs serve while one can; regular workers otherwise, if there are any."""
        return self.disaggregated and (self.pair_routable() or not self.regular)


def split_roles(workers: Iterable[Worker]) -> Roles:
    regular: list[Worker] = []
    prefill: list[Worker] = []
    decode: list[Worker] = []
    for worker in workers:
        kind = worker.worker_type
        (prefill if kind == PREFILL else decode if kind == DECODE else regular).append(worker)
    return Roles(tuple(regular), tuple(prefill), tuple(decode))


def missing_half(model: str | None, roles: Roles) -> str | None:
    """What keeps the model's PD pairs from serving (None: a pair can serve)."""
    name = repr(model) if model else "(any)"
    prefill, decode = transports(roles.prefill), transports(roles.decode)
    if prefill & decode:
        return None
    if prefill and decode:
        return (
            f"model {name} has healthy prefill workers over {'/'.join(sorted(prefill))} "
            f"and decode workers over {'/'.join(sorted(decode))} only: a pair needs "
            "both halves on the same transport"
        )
    if not roles.prefill:
        return f"model {name} has decode workers but no prefill worker"
    if not roles.decode:
        return f"model {name} has prefill workers but no decode worker"
    if not prefill and not decode:
        return f"model {name} has no healthy prefill worker and no healthy decode worker"
    if not prefill:
        return f"model {name} has decode workers but no healthy prefill worker"
    return f"model {name} has prefill workers but no healthy decode worker"


def _counts(workers: tuple[Worker, ...]) -> dict[str, int]:
    healthy = sum(1 for w in workers if w.healthy and w.status == "ready")
    return {"healthy": healthy, "total": len(workers)}


def pair_health(workers: Iterable[Worker]) -> dict[str, dict[str, Any]]:
    """Per model that has prefill or decode workers: their counts and whether a pair can
    serve it now (`can_serve`), with what is missing when not."""
    by_model: dict[str, list[Worker]] = {}
    for worker in workers:
        if worker.worker_type in (PREFILL, DECODE):
            by_model.setdefault(worker.model_id or "", []).append(worker)
    shown: dict[str, dict[str, Any]] = {}
    for model in sorted(by_model):
        roles = split_roles(by_model[model])
        problem = missing_half(model or None, roles)
        shown[model] = {
            "prefill": _counts(roles.prefill),
            "decode": _counts(roles.decode),
            "can_serve": problem is None,
            "missing": problem,
        }
    return shown
