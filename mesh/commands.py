"""What may enter the Raft log: command envelopes, outcomes and their error codes.

A command is a plain dict, because the journal outlives the code that wrote
it: a renamed class would make old entries unreadable, a dict never does.
Every command carries everything non-deterministic that applying it needs
(ids, the proposer's clock, hashes of secrets), so every node reaches the same
state from the same log.

    {"op": "worker.add",        # which state function applies it
     "rid": "<uuid4 hex>",      # request id: a retried submit is applied once
     "at": 1732280000.123,      # proposer's wall clock (seconds)
     "by": "node-1/admin",      # who asked (for audit and `updated_by`)
     "args": {...},             # op-specific, validated by the proposer and again in apply
     "exp": 1732280003.123,     # optional: the proposer stops waiting then (its clock)
     "lt": 1732280000.125}      # optional: the leader's clock when it took the command
                                # into its log (written by the leader, never the proposer)

`exp` and `lt` make a command that its proposer gave up on unable to land
late: `apply` refuses a command whose leader stamp is past its expiry, and
the proposer answers "unknown" only once its clock is past `exp` plus the
clock-skew allowance (docs/consistency.md has the argument). Entries written
before they existed carry neither and apply as before.

An outcome is a plain dict too: `{"ok": True, "value": ...}` or
`{"ok": False, "error": <code>, "message": <text>}` with a code from `ERRORS`.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Final, TypedDict

Command = dict[str, Any]
Outcome = dict[str, Any]

# Error codes an apply function may return, and the HTTP status each means.
ERRORS: Final[dict[str, int]] = {
    "invalid": 400,  # the command is malformed or breaks an invariant
    "not_found": 404,  # the object it names does not exist
    "conflict": 409,  # it would duplicate something unique (e.g. a worker URL)
    "version_mismatch": 409,  # expected_version did not match
    "forbidden": 403,  # the proposer may not do this (e.g. mint a key wider than its own)
    "too_large": 413,  # a record or value is over its size limit
    "limit_reached": 422,  # a tenant already holds as many objects of a kind as it may
    "expired": 503,  # the leader took the command into its log after its proposer gave up
}

# The longest a proposer may wait for a command (its expiry minus its clock). A command
# whose expiry is further ahead of the leader's stamp than twice this is refused: a
# proposer clock that far ahead would keep its commands alive long after it gave up.
LONGEST_WAIT: Final = 60.0

WORKER_OPS: Final = ("worker.add", "worker.update", "worker.set_status", "worker.remove")
POLICY_OPS: Final = ("policy.set", "policy.delete")
CONFIG_OPS: Final = ("config.set", "config.delete")
MEMBER_OPS: Final = ("member.upsert", "member.set_draining", "member.remove")
RATE_LIMIT_OPS: Final = ("ratelimit.set", "ratelimit.delete")
SHUTDOWN_OPS: Final = ("shutdown.plan",)
TENANCY_OPS: Final = ("tenant.create", "tenant.delete", "key.create", "key.rotate", "key.revoke")
AUTH_OPS: Final = ("auth.require", "token.revoke")
INTENT_OPS: Final = ("breaker.reset",)
MODEL_OPS: Final = ("model.put", "model.delete", "publish.put", "publish.delete", "usage.flush")
ALL_OPS: Final = (
    WORKER_OPS
    + POLICY_OPS
    + CONFIG_OPS
    + MEMBER_OPS
    + RATE_LIMIT_OPS
    + SHUTDOWN_OPS
    + TENANCY_OPS
    + AUTH_OPS
    + INTENT_OPS
    + MODEL_OPS
)


# -- worker fields: one rule for the proposer (a 400) and for apply (a refusal) --------------

WORKER_TYPES: Final = ("regular", "prefill", "decode")
# Fields of a worker that `worker.update` may change; url and id never change.
WORKER_MUTABLE: Final = (
    "model_id",
    "worker_type",
    "runtime",
    "priority",
    "cost",
    "labels",
    "api_key",
)


def worker_problem(fields: dict[str, Any]) -> str | None:
    """Why these worker fields (of `worker.add` or `worker.update`) may not be applied, or
    None. The handler asks before it submits; apply asks again, deterministically."""
    for field, value in fields.items():
        problem = _worker_field_problem(field, value)
        if problem:
            return problem
    return None


def _worker_field_problem(field: str, value: Any) -> str | None:
    if field in ("model_id", "runtime"):
        return None if value is None or isinstance(value, str) else f"{field} must be a string"
    if field == "worker_type":
        return None if value in WORKER_TYPES else f"worker_type must be one of {WORKER_TYPES}"
    if field == "priority":
        ok_int = isinstance(value, int) and not isinstance(value, bool)
        return None if ok_int and 0 <= value <= 1_000_000 else "priority must be an integer >= 0"
    if field == "cost":
        return None if _finite(value) and value >= 0 else "cost must be >= 0"
    if field == "labels":
        good = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return None if good else "labels must map strings to strings"
    if field == "api_key":
        return None if value is None or isinstance(value, str) else "api_key must be a string"
    return f"unknown worker field {field!r}"


class Envelope(TypedDict):
    op: str
    rid: str
    at: float
    by: str
    args: dict[str, Any]


def make(op: str, args: dict[str, Any], *, by: str, rid: str | None = None) -> Command:
    """Build a command on the proposer: stamps the request id and the clock."""
    if op not in ALL_OPS:
        raise ValueError(f"unknown command op {op!r}")
    envelope: Envelope = {
        "op": op,
        "rid": rid or uuid.uuid4().hex,
        "at": time.time(),
        "by": by,
        "args": args,
    }
    return dict(envelope)


def ok(value: Any = None) -> Outcome:
    return {"ok": True, "value": value}


def fail(error: str, message: str, **details: Any) -> Outcome:
    assert error in ERRORS, error
    return {"ok": False, "error": error, "message": message, **details}


def envelope_problem(command: Any) -> str | None:
    """Why a log entry is not a well-formed command, or None if it is."""
    if not isinstance(command, dict):
        return "command is not a mapping"
    if command.get("op") not in ALL_OPS:
        return f"unknown op {command.get('op')!r}"
    if not isinstance(command.get("rid"), str) or not command["rid"]:
        return "rid must be a non-empty string"
    if not isinstance(command.get("at"), int | float):
        return "at must be a number"
    if not isinstance(command.get("by"), str):
        return "by must be a string"
    if not isinstance(command.get("args"), dict):
        return "args must be a mapping"
    for field in ("exp", "lt"):
        if field in command and not _finite(command[field]):
            return f"{field} must be a finite number"
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
