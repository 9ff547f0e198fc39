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
     "args": {...},             # op-specific: `command_problem` is its rule, asked by the
                                # proposer (a 400) and again by apply (an `invalid` refusal)
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
from collections.abc import Callable
from typing import Any, Final, TypedDict, TypeGuard

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
TOKENIZER_OPS: Final = ("tokenizer.add", "tokenizer.remove")
WASM_OPS: Final = ("wasm.add", "wasm.update", "wasm.remove")
# A read barrier changes nothing: once a node has applied it, it has applied everything
# committed before it was proposed (Raft's ReadIndex through the log; node/read_index.py).
READ_OPS: Final = ("read.barrier",)
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
    + TOKENIZER_OPS
    + WASM_OPS
    + READ_OPS
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
    "tokenizer_path",
    "chat_template",
    "reasoning_parser",
    "tool_parser",
    "bootstrap_port",
)
# Text fields of a worker (SMG's names), with their size limits in characters.
WORKER_TEXT_LIMITS: Final = {
    "tokenizer_path": 4096,
    "chat_template": 65536,
    "reasoning_parser": 64,
    "tool_parser": 64,
}
WORKER_STATUSES: Final = ("pending", "ready", "failed", "draining")
# Key roles: an admin acts across the mesh; a minter is a tenant key that may create keys
# no wider than itself; a user may only use the API.
KEY_ROLES: Final = ("admin", "minter", "user")


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
        good = _integer(value) and 0 <= value <= 1_000_000
        return None if good else "priority must be an integer >= 0"
    if field == "cost":
        return None if _finite(value) and value >= 0 else "cost must be >= 0"
    if field == "labels":
        good = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
        return None if good else "labels must map strings to strings"
    if field == "api_key":
        return None if value is None or isinstance(value, str) else "api_key must be a string"
    if field == "bootstrap_port":  # a prefill worker's KV bootstrap server (SGLang PD)
        good = value is None or (_integer(value) and 1 <= value <= 65535)
        return None if good else "bootstrap_port must be null or an integer from 1 to 65535"
    if field in WORKER_TEXT_LIMITS:
        limit = WORKER_TEXT_LIMITS[field]
        good = value is None or (isinstance(value, str) and 0 < len(value) <= limit)
        return None if good else f"{field} must be null or a string of 1 to {limit} characters"
    return f"unknown worker field {field!r}"


# -- one rule per command: what its arguments must be, whatever the state holds --------------
#
# A rule sees only the command's arguments, so the proposer can ask it before submitting
# (a 400, nothing enters the log) and apply asks it again first (an `invalid` refusal).
# Checks that need the state (not found, already exists, version conflicts, tenant
# bounds) stay in the state's handlers. Journals outlive code: a rule may never refuse
# what an earlier apply accepted, or replicas replaying old history would diverge.

Args = dict[str, Any]
Validator = Callable[[Args], str | None]


def command_problem(op: str, args: Args) -> str | None:
    """Why `args` break the rule of command `op`, or None if they keep it."""
    return VALIDATORS[op](args)


def _no_rule(args: Args) -> str | None:
    """Commands whose arguments only name an object: whether it exists is the state's call."""
    return None


def _no_args_problem(args: Args) -> str | None:
    return "takes no arguments" if args else None


def _expected_version_problem(args: Args) -> str | None:
    expected = args.get("expected_version")
    if expected is None or (_integer(expected) and expected >= 0):
        return None
    return "expected_version must be a non-negative integer"


def _worker_add_problem(args: Args) -> str | None:
    spec = args.get("worker")
    if not isinstance(spec, dict):
        return "worker must be a mapping"
    worker_id, url = spec.get("id"), spec.get("url")
    if not isinstance(worker_id, str) or not isinstance(url, str) or not url:
        return "worker id and url are required strings"
    return worker_problem({f: spec[f] for f in WORKER_MUTABLE if f in spec})


def _worker_update_problem(args: Args) -> str | None:
    problem = _expected_version_problem(args)
    if problem:
        return problem
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        return "changes must be a non-empty mapping"
    return worker_problem(changes)


def _worker_set_status_problem(args: Args) -> str | None:
    if args.get("status") not in WORKER_STATUSES:
        return f"status must be one of {WORKER_STATUSES}"
    return None


def _policy_set_problem(args: Args) -> str | None:
    model, policy, params = args.get("model"), args.get("policy"), args.get("params", {})
    if not isinstance(model, str) or not model:
        return "model must be a non-empty string"
    if not isinstance(policy, str) or not isinstance(params, dict):
        return "policy must be a string and params a mapping"
    return _expected_version_problem(args)


def _config_set_problem(args: Args) -> str | None:
    key = args.get("key")
    if not isinstance(key, str) or not key:
        return "key must be a non-empty string"
    return _expected_version_problem(args)


def _member_upsert_problem(args: Args) -> str | None:
    spec = args.get("member")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        return "member must be a mapping with a non-empty name"
    if not isinstance(spec.get("boot_id"), str) or not isinstance(spec.get("http_url"), str):
        return "member boot_id and http_url must be strings"
    return None


def _member_set_draining_problem(args: Args) -> str | None:
    return None if isinstance(args.get("draining"), bool) else "draining must be true or false"


def _ratelimit_set_problem(args: Args) -> str | None:
    scope, rate, burst = args.get("scope"), args.get("requests_per_second"), args.get("burst")
    if not isinstance(scope, str) or not scope:
        return "scope must be a non-empty string"
    if not _positive(rate):
        return "requests_per_second must be a finite number above 0"
    if not _positive(burst) or burst < 1:
        return "burst must be a finite number of at least 1"
    return _expected_version_problem(args)


def _shutdown_plan_problem(args: Args) -> str | None:
    plan_id, targets = args.get("id"), args.get("targets")
    if not isinstance(plan_id, str) or not plan_id:
        return "id must be a non-empty string"
    if not isinstance(targets, dict) or not targets:
        return "targets must name at least one node"
    if not all(isinstance(boot_id, str) for boot_id in targets.values()):
        return "each target maps a node name to its boot id"
    for field in ("grace_period_secs", "drain_delay_secs"):
        value = args.get(field)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 86400:
            return f"{field} must be a number of seconds from 0 to 86400"
    return None


def _tenant_create_problem(args: Args) -> str | None:
    name = args.get("name")
    return None if isinstance(name, str) and name else "tenant name must be a non-empty string"


def _key_spec_problem(spec: Any) -> str | None:
    """The rule of a new key's record (of `key.create`, and of `publish.put` creating one)."""
    if not isinstance(spec, dict):
        return "key must be a mapping"
    key_id, digest = spec.get("id"), spec.get("hash")
    if not isinstance(key_id, str) or not isinstance(digest, str) or len(digest) != 64:
        return "key id and a SHA-256 hex hash are required"
    if spec.get("role") not in KEY_ROLES:
        return f"role must be one of {', '.join(KEY_ROLES)}"
    return None


def _key_create_problem(args: Args) -> str | None:
    return _key_spec_problem(args.get("key"))


def _key_rotate_problem(args: Args) -> str | None:
    digest = args.get("hash")
    if not isinstance(digest, str) or len(digest) != 64:
        return "a new, unused SHA-256 hex hash is required"
    return None


def _token_revoke_problem(args: Args) -> str | None:
    subject = args.get("subject")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        return "subject must be a non-empty string of at most 256 characters"
    return None


def _model_put_problem(args: Args) -> str | None:
    spec = args.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        return "model must be a mapping with a non-empty name"
    if not isinstance(spec.get("selector"), dict) or not spec["selector"]:
        return "selector must name a model_id or labels"
    return _expected_version_problem(args)


def _publish_put_problem(args: Args) -> str | None:
    if not isinstance(args.get("publication"), dict):
        return "publication must be a mapping"
    return _key_spec_problem(args.get("key")) if args.get("create") else None


def _usage_flush_problem(args: Args) -> str | None:
    """Only the batch's shape: whether counts must be sound depends on whether their
    subject still exists (a gone subject's delta is skipped, whatever it holds)."""
    deltas = args.get("deltas")
    if not isinstance(deltas, dict):
        return "deltas must be a mapping"
    if not all(isinstance(s, str) and isinstance(d, dict) for s, d in deltas.items()):
        return "each delta must be a mapping keyed by subject"
    return None


# -- tokenizers: the record names its files by digest; the bytes travel between nodes ---------

TOKENIZER_NAME_LIMIT: Final = 128
TOKENIZER_SOURCE_LIMIT: Final = 4096
TOKENIZER_FILES_MOST: Final = 16
TOKENIZER_FILE_NAME_LIMIT: Final = 255
# The file a tokenizer cannot be loaded without (the others are optional).
TOKENIZER_MAIN_FILE: Final = "tokenizer.json"
_HEX: Final = frozenset("0123456789abcdef")


def is_sha256(value: Any) -> TypeGuard[str]:
    """A SHA-256 digest as the blob store names it: 64 lower-case hex digits."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def tokenizer_file_name_problem(name: Any) -> str | None:
    """A file's name relative to the tokenizer's directory: one plain name, no path."""
    good = (
        isinstance(name, str)
        and 0 < len(name) <= TOKENIZER_FILE_NAME_LIMIT
        and name not in (".", "..")
        and not set(name) & set("/\\\0")
    )
    return None if good else f"file name {name!r} must be a plain file name (no path)"


def _tokenizer_files_problem(files: Any) -> str | None:
    if not isinstance(files, dict) or not 0 < len(files) <= TOKENIZER_FILES_MOST:
        return f"files must map 1 to {TOKENIZER_FILES_MOST} file names to their digests"
    if TOKENIZER_MAIN_FILE not in files:
        return f"files must include {TOKENIZER_MAIN_FILE}"
    for name, entry in files.items():
        problem = tokenizer_file_name_problem(name)
        if problem:
            return problem
        if not isinstance(entry, dict) or not is_sha256(entry.get("sha256")):
            return f"files[{name!r}] must hold a sha256 (64 lower-case hex digits)"
        if not _integer(entry.get("size")) or entry["size"] < 0:
            return f"files[{name!r}] must hold a size (bytes, >= 0)"
    return None


def _named_spec_problem(spec: dict[str, Any], kind: str, name_limit: int) -> str | None:
    """The id and name every registered object (tokenizer, WASM module) has."""
    if not isinstance(spec.get("id"), str) or not spec["id"]:
        return f"{kind} id must be a non-empty string"
    name = spec.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= name_limit:
        return f"name must be a string of 1 to {name_limit} characters"
    return None


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _tokenizer_add_problem(args: Args) -> str | None:
    spec = args.get("tokenizer")
    if not isinstance(spec, dict):
        return "tokenizer must be a mapping"
    if not _is_uuid(spec.get("id")):  # it names a directory on every node (new op: no old ids)
        return "tokenizer id must be a UUID (8-4-4-4-12 lower-case hex)"
    problem = _named_spec_problem(spec, "tokenizer", TOKENIZER_NAME_LIMIT)
    if problem:
        return problem
    source = spec.get("source")
    if not isinstance(source, str) or not 0 < len(source) <= TOKENIZER_SOURCE_LIMIT:
        return f"source must be a string of 1 to {TOKENIZER_SOURCE_LIMIT} characters"
    template, limit = spec.get("chat_template"), WORKER_TEXT_LIMITS["chat_template"]
    if template is not None and not (isinstance(template, str) and 0 < len(template) <= limit):
        return f"chat_template must be null or a string of 1 to {limit} characters"
    failure = spec.get("failure")
    if failure is None:
        return _tokenizer_files_problem(spec.get("files"))
    # A source that gave nothing is recorded failed (with why) on every node.
    if not isinstance(failure, str) or not 0 < len(failure) <= TOKENIZER_SOURCE_LIMIT:
        return f"failure must be null or a string of 1 to {TOKENIZER_SOURCE_LIMIT} characters"
    return None if spec.get("files") in (None, {}) else "a failed tokenizer has no files"


# -- WASM middleware: the record names the component by digest; the bytes travel by blob ------

WASM_NAME_LIMIT: Final = 128
WASM_ATTACH_POINTS: Final = ("OnRequest", "OnResponse")
WASM_ON_ERROR: Final = ("fail", "continue")
WASM_ORDER_MOST: Final = 1_000_000
WASM_TIMEOUT_MS: Final = (1, 60_000)  # per call
WASM_MEMORY_BYTES: Final = (64 * 1024, 4 * 1024**3)  # per instance
WASM_BATCH_MOST: Final = 16  # modules one `wasm.add` registers together
# Fields `wasm.update` may change; name, digest and attach points never change.
WASM_MUTABLE: Final = ("enabled", "order", "on_error", "limits")


def _wasm_limits_problem(limits: Any) -> str | None:
    if not isinstance(limits, dict) or set(limits) - {"timeout_ms", "memory_bytes"}:
        return "limits must be a mapping of timeout_ms and memory_bytes"
    for field, (low, high) in (
        ("timeout_ms", WASM_TIMEOUT_MS),
        ("memory_bytes", WASM_MEMORY_BYTES),
    ):
        value = limits.get(field)
        if value is not None and not (_integer(value) and low <= value <= high):
            return f"limits.{field} must be an integer from {low} to {high}"
    return None


def _wasm_field_problem(field: str, value: Any) -> str | None:
    if field == "enabled":
        return None if isinstance(value, bool) else "enabled must be true or false"
    if field == "order":
        good = _integer(value) and 0 <= value <= WASM_ORDER_MOST
        return None if good else f"order must be an integer from 0 to {WASM_ORDER_MOST}"
    if field == "on_error":
        return None if value in WASM_ON_ERROR else f"on_error must be one of {WASM_ON_ERROR}"
    if field == "limits":
        return _wasm_limits_problem(value)
    return f"unknown module field {field!r}"


def _wasm_add_problem(args: Args) -> str | None:
    """`{"module": spec}` (one module, as earlier releases wrote it) or `{"modules": [spec,
    ...]}` (a `POST /wasm` batch: all of them or none)."""
    if "modules" not in args:
        return _wasm_spec_problem(args.get("module"))
    specs = args["modules"]
    if "module" in args:
        return "give module or modules, not both"
    if not isinstance(specs, list) or not 0 < len(specs) <= WASM_BATCH_MOST:
        return f"modules must list 1 to {WASM_BATCH_MOST} modules"
    for i, spec in enumerate(specs):
        problem = _wasm_spec_problem(spec)
        if problem:
            return f"modules[{i}]: {problem}"
    return None


def _wasm_spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return "module must be a mapping"
    problem = _named_spec_problem(spec, "module", WASM_NAME_LIMIT)
    if problem:
        return problem
    points = spec.get("attach_points")
    if not is_sha256(spec.get("sha256")):
        return "sha256 must be 64 lower-case hex digits"
    if not _integer(spec.get("size")) or spec["size"] <= 0:
        return "size must be a number of bytes above 0"
    if (
        not isinstance(points, list)
        or not points
        or not all(point in WASM_ATTACH_POINTS for point in points)
        or len(set(points)) != len(points)
    ):
        return f"attach_points must list one or both of {WASM_ATTACH_POINTS}, once each"
    for field in WASM_MUTABLE:
        problem = None if spec.get(field) is None else _wasm_field_problem(field, spec[field])
        if problem:
            return problem
    return None


def _wasm_update_problem(args: Args) -> str | None:
    changes = args.get("changes")
    if not isinstance(changes, dict) or not changes:
        return "changes must be a non-empty mapping"
    for field, value in changes.items():
        problem = _wasm_field_problem(field, value)
        if problem:
            return problem
    return None


VALIDATORS: Final[dict[str, Validator]] = {
    "worker.add": _worker_add_problem,
    "worker.update": _worker_update_problem,
    "worker.set_status": _worker_set_status_problem,
    "worker.remove": _no_rule,
    "policy.set": _policy_set_problem,
    "policy.delete": _no_rule,
    "config.set": _config_set_problem,
    "config.delete": _expected_version_problem,
    "member.upsert": _member_upsert_problem,
    "member.set_draining": _member_set_draining_problem,
    "member.remove": _no_rule,
    "ratelimit.set": _ratelimit_set_problem,
    "ratelimit.delete": _no_rule,
    "shutdown.plan": _shutdown_plan_problem,
    "tenant.create": _tenant_create_problem,
    "tenant.delete": _no_rule,
    "key.create": _key_create_problem,
    "key.rotate": _key_rotate_problem,
    "key.revoke": _no_rule,
    "auth.require": _no_rule,
    "token.revoke": _token_revoke_problem,
    "breaker.reset": _no_rule,
    "model.put": _model_put_problem,
    "model.delete": _no_rule,
    "publish.put": _publish_put_problem,
    "publish.delete": _no_rule,
    "usage.flush": _usage_flush_problem,
    "tokenizer.add": _tokenizer_add_problem,
    "tokenizer.remove": _no_rule,
    "wasm.add": _wasm_add_problem,
    "wasm.update": _wasm_update_problem,
    "wasm.remove": _no_rule,
    "read.barrier": _no_args_problem,
}
if VALIDATORS.keys() != set(ALL_OPS):  # every op has exactly one rule
    raise ImportError(f"ops without a rule: {set(ALL_OPS) ^ VALIDATORS.keys()}")


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


def _integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> TypeGuard[int | float]:
    return _finite(value) and value > 0
