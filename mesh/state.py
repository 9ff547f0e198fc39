"""The replicated control state of a meshgate mesh, and how each command changes it.

Every node holds one `ControlState` and applies the same commands in the same
log order, so every node holds the same state. This file is the whole story of
what the mesh agrees on; read it top to bottom.

Rules this module keeps (see shared/RAFT.md):
- `apply` is pure and deterministic: no I/O, no clock, no randomness. Ids,
  timestamps and secret hashes arrive inside the command.
- `apply` never raises: a malformed or impossible command gets an error
  outcome, the same on every node, and changes nothing.
- Copy-on-write: a collection is never mutated in place (except `requests`,
  which the event loop only reads key by key). Apply builds a new dict and
  swaps it in, so the event loop may read any collection (and any record in
  it) without a lock while the Raft thread applies the next command.
- A command's arguments keep its op's rule (`mesh.commands.command_problem`), which
  apply asks before the handler, as the proposer did: the handlers below judge only
  against the state (not found, already exists, version, bounds).
- Time comes from the log: `log_time` is the latest leader stamp applied, the
  same on every node at the same index (see `apply` and docs/consistency.md).
- Plain data only (dicts, lists, str, numbers), so the state pickles into
  snapshots, and stays small.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from mesh.commands import (
    KEY_ROLES as KEY_ROLES,  # re-exported: a key's roles are part of the state's story
)
from mesh.commands import (
    LONGEST_WAIT,
    READ_OPS,
    VALIDATORS,
    Command,
    Outcome,
    command_problem,
    envelope_problem,
    fail,
    ok,
)

log = logging.getLogger(__name__)

Record = dict[str, Any]

DEFAULT_POLICY_KEY: Final = "*"  # the policy for models that have none of their own
GLOBAL_SCOPE: Final = "*"  # a rate limit over all inference requests
# Request ids are remembered (for dedup and GET /ha/requests/{id}): always the last
# REQUESTS_KEPT; beyond that, those applied in the last REQUESTS_KEPT_SECS of log time
# and those a late copy of could still be applied; never more than REQUESTS_KEPT_MOST.
REQUESTS_KEPT: Final = 4096
REQUESTS_KEPT_SECS: Final = 600.0
REQUESTS_KEPT_MOST: Final = 20_000
# Ops that change nothing, so applying one twice is harmless: their ids are not kept,
# and frequent reads cannot push the ids of real writes out of the memory.
UNREMEMBERED: Final = frozenset(READ_OPS)
RECENT_REQUESTS_KEPT: Final = REQUESTS_KEPT  # the name before time-bounded memory
SHUTDOWN_PLANS_KEPT: Final = 20  # recent shutdown plans, for /ha/status history
MODEL_FIELDS: Final = (
    "name",
    "tenant",
    "selector",
    "policy",
    "policy_params",
    "scaling",
    "framework",
    "storage_uri",  # kept since issue 10; entries from before it have none (None)
    "description",
)
MEMBER_FIELDS: Final = ("raft_address", "http_url", "version", "voter", "boot_id", "started_at")
# Bounds on what a tenant can make the mesh replicate (every node holds all of it).
MAX_ACTIVE_KEYS_PER_TENANT: Final = 1000
REVOKED_KEYS_KEPT_PER_TENANT: Final = 100  # older revoked records are forgotten
MAX_MODELS_PER_TENANT: Final = 200
MAX_PUBLICATIONS_PER_TENANT: Final = 100
MAX_TOKENIZERS: Final = 1000  # each node loads every one into memory
MAX_WASM_MODULES: Final = 64  # each node compiles every one and runs the chain per request
# A module's limits when its registration names none (SMG's defaults).
WASM_DEFAULT_LIMITS: Final = {"timeout_ms": 50, "memory_bytes": 64 * 1024 * 1024}
MAX_RECORD_BYTES: Final = 64 * 1024  # a command's arguments, measured as JSON text
# Commands whose arguments come from a client's request body, and so are size-checked.
SIZE_CHECKED_OPS: Final = frozenset(
    {
        "worker.add",
        "worker.update",
        "policy.set",
        "config.set",
        "ratelimit.set",
        "tenant.create",
        "key.create",
        "model.put",
        "publish.put",
        "tokenizer.add",
        "wasm.add",
        "wasm.update",
    }
)


# What a snapshot carries: every field of a ControlState (tests/unit/test_state_snapshot.py
# fails when a field is added to `__init__` and not here). `recent` is the request memory
# of a state from before `requests`.
SNAPSHOT_FIELDS: Final = (
    "applied_index",
    "workers",
    "worker_urls",
    "policies",
    "config",
    "members",
    "rate_limits",
    "shutdowns",
    "tenants",
    "api_keys",
    "key_hashes",
    "auth_required",
    "token_versions",
    "models",
    "published",
    "usage",
    "tokenizers",
    "wasm_modules",
    "breaker_resets",
    "requests",
    "log_time",
    "forgotten",
    "recent",
)


class ControlState:
    """Everything the mesh agrees on. Each attribute is replaced, never mutated."""

    # Class-level defaults for fields added after the first release: a snapshot
    # written before they existed unpickles without them.
    auth_required: bool = False
    token_versions: dict[str, int] = {}
    requests: dict[str, Record] = {}
    log_time: float = 0.0
    forgotten: Record = {"index": 0, "log_time": None}
    recent: dict[str, Outcome] = {}  # request memory of snapshots written before `requests`
    tokenizers: dict[str, Record] = {}
    wasm_modules: dict[str, Record] = {}

    def __init__(self) -> None:
        # Log index of the last command applied; every version is such an index.
        self.applied_index: int = 0
        # Inference workers by id (UUID string). See `_worker_add` for the record.
        self.workers: dict[str, Record] = {}
        # url -> worker id: O(1) duplicate detection and lookup by URL.
        self.worker_urls: dict[str, str] = {}
        # Routing policy per model id ("*" is the default): {policy, params, version, ...}.
        self.policies: dict[str, Record] = {}
        # Free-form cluster configuration: key -> {value, version, updated_at, updated_by}.
        self.config: dict[str, Record] = {}
        # Gateway nodes of the mesh by name: {name, raft_address (None for a read-only
        # member), http_url, version, voter, boot_id, started_at, draining, ...}.
        self.members: dict[str, Record] = {}
        # Requests-per-second rules by scope ("*" = all requests, else a model id).
        self.rate_limits: dict[str, Record] = {}
        # Coordinated shutdowns: plan id -> {targets: {node name: boot id}, grace...}.
        self.shutdowns: dict[str, Record] = {}
        # Tenants by name: {name, status, description, created_at, ...}.
        self.tenants: dict[str, Record] = {}
        # Managed API keys by id: {id, name, tenant, role, prefix, hash (SHA-256 hex of
        # the key; the key itself is never stored), models, limits, status, expires_at}.
        self.api_keys: dict[str, Record] = {}
        # SHA-256 hex of an active key -> its id: the lookup every keyed request makes.
        self.key_hashes: dict[str, str] = {}
        # Set once any credential has guarded the mesh (a static key announced by a node,
        # or the first managed key), and never cleared: revoking the last key must not
        # open the mesh to anonymous callers.
        self.auth_required = False
        # Tokens meshgate issued to a user are valid only from this version on (the log
        # index of the user's last "revoke my tokens"); absent means every token is.
        self.token_versions = {}
        # Model deployments by "tenant/name": a name for a set of workers (selected by
        # model id or labels) with its routing policy and scaling hints.
        self.models: dict[str, Record] = {}
        # Publications by "tenant/name": external path, key id, rate limits, allowed tenants.
        self.published: dict[str, Record] = {}
        # Usage by subject ("key:<id>", "model:<tenant/name>", "tenant:<name>"), from the
        # batched deltas nodes flush every few seconds (never one command per request).
        self.usage: dict[str, Record] = {}
        # Registered tokenizers by id: {id, name, source, files: {file name: {sha256,
        # size}}, chat_template, failure, created_at, created_by, version}. Never the bytes: each
        # node fetches those by digest from a peer (node/blobs/).
        self.tokenizers = {}
        # WASM middleware by id: {id, name, sha256, size, attach_points, order, enabled,
        # on_error, limits {timeout_ms, memory_bytes}, created_at, created_by, version}.
        # Never the bytes: each node fetches the component by digest (node/blobs/).
        self.wasm_modules = {}
        # How many circuit-breaker resets were ordered (each node resets its breakers).
        self.breaker_resets: int = 0
        # Recently applied request ids, oldest first (dict keeps order): rid -> {outcome,
        # index, log_time (when applied), expires_at, at (the proposer's stamp, which tells
        # a client's retry from our own resubmission of the same command)}.
        self.requests = {}
        # The latest leader stamp ("lt") applied so far: the mesh's agreed clock. It only
        # moves forward, and only through the log, so every node reads the same value at
        # the same index.
        self.log_time = 0.0
        # The newest request id forgotten: every id applied after it is still remembered.
        self.forgotten = {"index": 0, "log_time": None}

    # -- applying -----------------------------------------------------------

    def apply(self, command: Command, index: int) -> Outcome:
        """Apply one committed command at log `index`; return its outcome. Never raises.

        In this order: a malformed envelope fails; the leader's stamp advances
        `log_time`; a request id already applied answers as the first time (marked
        `replayed` when it is another attempt than the one applied); a command whose
        expiry `log_time` has passed fails as `expired`, changing nothing and leaving
        its id free for a new attempt; a command over its size or breaking its op's rule
        (`mesh.commands.command_problem`) fails as `invalid`; anything else goes to its
        handler."""
        self.applied_index = index
        problem = envelope_problem(command)
        if problem:
            return fail("invalid", problem)
        if "requests" not in self.__dict__:
            self._adopt_recent()
        stamped = "lt" in command
        if stamped:
            self.log_time = max(self.log_time, command["lt"])
        seen = self.requests.get(command["rid"])
        if seen is not None:  # a retried submit: answer as the first time, change nothing
            if seen["at"] is not None and seen["at"] != command["at"]:
                return {**seen["outcome"], "replayed": True}
            return seen["outcome"]  # type: ignore[no-any-return]
        if stamped and "exp" in command:
            late = _expiry_problem(command, self.log_time)
            if late:
                return late
        handler = _HANDLERS[command["op"]]
        try:
            outcome = (
                _size_problem(command)
                or _rule_problem(command)
                or handler(self, command["args"], command, index)
            )
        except Exception as exc:  # a bug; the same on every node, so still deterministic
            log.exception("apply %s failed", command["op"])
            outcome = fail("invalid", f"{command['op']} could not be applied: {exc}")
        if command["op"] not in UNREMEMBERED:
            self._remember(command, outcome, index, stamped)
        return outcome

    def _remember(self, command: Command, outcome: Outcome, index: int, stamped: bool) -> None:
        # The one collection mutated in place: the event loop reads it one key at a
        # time (GET /ha/requests/{id}), which a dict allows while the Raft thread
        # writes, and copying thousands of entries on every command would cost more
        # than the command.
        requests = self.requests
        requests[command["rid"]] = {
            "outcome": outcome,
            "index": index,
            "log_time": self.log_time if stamped else None,
            "expires_at": command.get("exp") if stamped else None,
            "at": command["at"],
        }
        while len(requests) > REQUESTS_KEPT:
            rid, oldest = next(iter(requests.items()))
            if not self._may_forget(oldest, len(requests)):
                break
            del requests[rid]
            self.forgotten = {"index": oldest["index"], "log_time": oldest["log_time"]}

    def _may_forget(self, record: Record, count: int) -> bool:
        """May the oldest remembered request id be forgotten, with `count` remembered?"""
        if count > REQUESTS_KEPT_MOST:
            return True  # the hard bound on the state's size
        expires = record["expires_at"]
        if expires is not None and expires >= self.log_time:
            return False  # a late copy could still be applied: its id must stay known
        applied = record["log_time"]
        return applied is None or self.log_time - applied > REQUESTS_KEPT_SECS

    def _adopt_recent(self) -> None:
        """A snapshot from before request records: keep its ids, as unstamped records.
        (Also gives this instance its own `requests`, never the class-level default.)"""
        unstamped = {"index": None, "log_time": None, "expires_at": None, "at": None}
        self.requests = {rid: {"outcome": o, **unstamped} for rid, o in self.recent.items()}
        self.recent = {}

    # -- snapshots ------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Every field, as plain data: what a data-plane process loads (JSON, never pickle).

        The collections are copy-on-write, so the dict shares them; `requests`, the one
        mutated in place, is copied. Read it where nothing applies meanwhile (the Raft
        thread). A state from before request records keeps `recent` instead."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in SNAPSHOT_FIELDS}
        if "requests" in self.__dict__:
            fields["requests"] = dict(self.requests)
        else:
            del fields["requests"]
        return fields

    @classmethod
    def from_snapshot(cls, fields: dict[str, Any]) -> ControlState:
        """The state `to_snapshot` described; a field it lacks keeps its default."""
        state = cls()
        unknown = set(fields) - set(SNAPSHOT_FIELDS)
        if unknown:
            raise ValueError(f"unknown control state fields: {sorted(unknown)}")
        if "requests" not in fields:
            del state.requests  # apply adopts `recent` into request records
        for name, value in fields.items():
            setattr(state, name, value)
        return state

    def request(self, rid: str) -> Record | None:
        """What is remembered of request id `rid` (None: not applied, or forgotten)."""
        return self.requests.get(rid)

    # -- reading ------------------------------------------------------------

    def policy_for(self, model: str | None) -> Record | None:
        policies = self.policies
        return policies.get(model or "") or policies.get(DEFAULT_POLICY_KEY)

    def tokenizer_named(self, name: str) -> Record | None:
        """The tokenizer of this name (names are unique; there are few)."""
        return next((t for t in self.tokenizers.values() if t["name"] == name), None)

    def wasm_named(self, name: str) -> Record | None:
        """The WASM module of this name (names are unique; there are few)."""
        return next((m for m in self.wasm_modules.values() if m["name"] == name), None)

    def digests_in_use(self) -> set[str]:
        """Every blob a record names: what removing a record must not delete."""
        tokenizer_files = {
            f["sha256"] for t in self.tokenizers.values() for f in t["files"].values()
        }
        return tokenizer_files | {m["sha256"] for m in self.wasm_modules.values()}

    def counts(self) -> dict[str, int]:
        """How many objects each replicated collection holds (for /ha/status)."""
        return {
            "workers": len(self.workers),
            "policies": len(self.policies),
            "config": len(self.config),
            "members": len(self.members),
            "rate_limits": len(self.rate_limits),
            "shutdown_plans": len(self.shutdowns),
            "tenants": len(self.tenants),
            "api_keys": len(self.api_keys),
            "models": len(self.models),
            "published_models": len(self.published),
            "tokenizers": len(self.tokenizers),
            "wasm_modules": len(self.wasm_modules),
        }


# -- helpers ---------------------------------------------------------------


def _with(mapping: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    new = dict(mapping)
    new[key] = value
    return new


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    new = dict(mapping)
    new.pop(key, None)
    return new


def _stamp(command: Command, index: int) -> Record:
    return {"version": index, "updated_at": command["at"], "updated_by": command["by"]}


def _version_problem(record: Record | None, expected: Any) -> Outcome | None:
    """Compare-and-set: None when `expected` (if given) matches; 0 means 'must not exist'.
    That `expected` is a non-negative integer is the op's rule, checked before."""
    if expected is None:
        return None
    current = record["version"] if record else 0
    if current != expected:
        return fail(
            "version_mismatch",
            f"expected version {expected}, current version is {current}",
            current_version=current,
        )
    return None


def _json_size(value: Any) -> int:
    """About how many bytes `value` takes as JSON text (deterministic, no recursion)."""
    size, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, dict):
            size += 2 + len(item)
            for key, child in item.items():
                size += len(key) + 3 if isinstance(key, str) else 8
                stack.append(child)
        elif isinstance(item, list | tuple):
            size += 2 + len(item)
            stack.extend(item)
        else:
            size += 8
        if size > MAX_RECORD_BYTES:
            break
    return size


def _expiry_problem(command: Command, now: float) -> Outcome | None:
    """Refuse a command the leader took into its log after its proposer gave up on it.

    `now` is `log_time` including this command's own stamp. Judged against the
    log's clock, which only moves forward, rather than the stamp alone: once any
    node has applied a stamp past a command's expiry, no copy of that command can
    be applied later anywhere, which is what lets GET /ha/requests/{id} answer
    "never" and lets the memory forget the id."""
    expires = command["exp"]
    if now > expires:
        return fail(
            "expired",
            f"the leader took this command into its log {now - expires:.3f} s after its "
            "proposer stopped waiting for it; nothing changed. Retry; if this repeats, the "
            "nodes' clocks disagree (check NTP)",
            expires_at=expires,
            log_time=now,
        )
    if expires - command["lt"] > 2 * LONGEST_WAIT:
        return fail(
            "invalid",
            f"the command expires {expires - command['lt']:.0f} s after the leader took it, "
            f"more than {2 * LONGEST_WAIT:.0f} s: the proposer's clock is ahead (check NTP)",
        )
    return None


def _size_problem(command: Command) -> Outcome | None:
    """Refuse an oversized client-supplied command (the proposer checked first)."""
    if command["op"] in SIZE_CHECKED_OPS and _json_size(command["args"]) > MAX_RECORD_BYTES:
        return fail(
            "too_large",
            f"{command['op']}: the record is larger than {MAX_RECORD_BYTES} bytes",
            limit=MAX_RECORD_BYTES,
        )
    return None


def _rule_problem(command: Command) -> Outcome | None:
    """Refuse arguments that break their op's rule (the proposer asked the same rule)."""
    problem = command_problem(command["op"], command["args"])
    return fail("invalid", problem) if problem else None


# -- workers -----------------------------------------------------------------


def _worker_add(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Register a worker. args: {"worker": {id, url, model_id, worker_type, runtime,
    connection_mode, priority, cost, labels, api_key, tokenizer_path, chat_template,
    reasoning_parser, tool_parser, bootstrap_port}}. It starts `pending`: a
    background discovery job on the proposing node marks it ready or failed."""
    spec = args["worker"]
    worker_id, url = spec["id"], spec["url"]
    if url in state.worker_urls:
        existing = state.worker_urls[url]
        return fail("conflict", f"a worker with url {url} already exists", worker_id=existing)
    if worker_id in state.workers:
        return fail("conflict", f"worker id {worker_id} already exists", worker_id=worker_id)
    record: Record = {
        "id": worker_id,
        "url": url,
        "model_id": spec.get("model_id"),
        "worker_type": spec.get("worker_type", "regular"),
        "runtime": spec.get("runtime"),
        "connection_mode": spec.get("connection_mode", "http"),
        "priority": spec.get("priority", 50),
        "cost": spec.get("cost", 1.0),
        "labels": dict(spec.get("labels") or {}),
        "api_key": spec.get("api_key"),
        "tokenizer_path": spec.get("tokenizer_path"),
        "chat_template": spec.get("chat_template"),
        "reasoning_parser": spec.get("reasoning_parser"),
        "tool_parser": spec.get("tool_parser"),
        "bootstrap_port": spec.get("bootstrap_port"),
        "status": "pending",
        "job_status": {"state": "queued", "message": "discovery queued", "attempts": 0},
        "metadata": {},
        "created_at": cmd["at"],
        "created_by": cmd["by"],
        **_stamp(cmd, index),
    }
    state.workers = _with(state.workers, worker_id, record)
    state.worker_urls = _with(state.worker_urls, url, worker_id)
    return ok({"worker_id": worker_id, "version": index})


def _worker_update(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Change mutable fields. args: {"id", "changes": {field: value}, "expected_version"?}."""
    record = state.workers.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"worker {args.get('id')} not found")
    mismatch = _version_problem(record, args.get("expected_version"))
    if mismatch:
        return mismatch
    updated = {**record, **args["changes"], **_stamp(cmd, index)}
    state.workers = _with(state.workers, record["id"], updated)
    return ok({"worker_id": record["id"], "version": index})


def _worker_set_status(
    state: ControlState, args: dict[str, Any], cmd: Command, index: int
) -> Outcome:
    """Record a lifecycle step. args: {"id", "status", "job_status", "metadata"?, "model_id"?}.

    A draining worker stays draining: only its removal ends that state."""
    record = state.workers.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"worker {args.get('id')} not found")
    status = args["status"]
    if record["status"] == "draining" and status != "draining":
        return fail("conflict", "worker is draining; it can only be removed")
    updated: Record = {**record, "status": status, **_stamp(cmd, index)}
    if isinstance(args.get("job_status"), dict):
        updated["job_status"] = args["job_status"]
    if isinstance(args.get("metadata"), dict):
        updated["metadata"] = args["metadata"]
    if record.get("model_id") is None and isinstance(args.get("model_id"), str):
        updated["model_id"] = args["model_id"]  # discovered; an explicit model_id wins
    state.workers = _with(state.workers, record["id"], updated)
    return ok({"worker_id": record["id"], "status": status, "version": index})


def _worker_remove(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Forget a worker. args: {"id"}."""
    record = state.workers.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"worker {args.get('id')} not found")
    state.workers = _without(state.workers, record["id"])
    state.worker_urls = _without(state.worker_urls, record["url"])
    return ok({"worker_id": record["id"], "version": index})


# -- routing policies ----------------------------------------------------------


def _policy_set(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Set the routing policy of a model ("*" = default). args: {model, policy, params}.
    The proposer validated name and params against the policy registry."""
    model, policy, params = args["model"], args["policy"], args.get("params", {})
    mismatch = _version_problem(state.policies.get(model), args.get("expected_version"))
    if mismatch:
        return mismatch
    record = {"model_id": model, "policy": policy, "params": params, **_stamp(cmd, index)}
    state.policies = _with(state.policies, model, record)
    return ok({"model_id": model, "version": index})


def _policy_delete(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    model = args.get("model")
    if model not in state.policies:
        return fail("not_found", f"no policy is set for model {model}")
    state.policies = _without(state.policies, model)
    return ok({"model_id": model, "version": index})


# -- configuration keys ----------------------------------------------------------


def _config_set(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Write a config key. args: {key, value, expected_version?}; value is any JSON value."""
    key = args["key"]
    mismatch = _version_problem(state.config.get(key), args.get("expected_version"))
    if mismatch:
        return mismatch
    record = {"key": key, "value": args.get("value"), **_stamp(cmd, index)}
    state.config = _with(state.config, key, record)
    return ok({"key": key, "version": index})


def _config_delete(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    key = args.get("key")
    record = state.config.get(key) if isinstance(key, str) else None
    if record is None:
        return fail("not_found", f"config key {key} not found")
    mismatch = _version_problem(record, args.get("expected_version"))
    if mismatch:
        return mismatch
    state.config = _without(state.config, record["key"])
    return ok({"key": record["key"], "version": index})


# -- mesh members ----------------------------------------------------------------------


def _member_upsert(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """A node announces itself at start. args: {"member": {name, raft_address, http_url,
    version, voter, boot_id, started_at}}. A new boot clears the draining flag."""
    spec = args["member"]
    raft_address = spec.get("raft_address")
    if raft_address is not None:
        for other in state.members.values():
            if other["raft_address"] == raft_address and other["name"] != spec["name"]:
                return fail("conflict", f"raft address {raft_address} belongs to {other['name']}")
    previous = state.members.get(spec["name"], {})
    record: Record = {
        **previous,
        "name": spec["name"],
        **{field: spec.get(field) for field in MEMBER_FIELDS},
        "draining": previous.get("draining", False)
        if previous.get("boot_id") == spec["boot_id"]
        else False,
        "joined_at": previous.get("joined_at", cmd["at"]),
        **_stamp(cmd, index),
    }
    state.members = _with(state.members, spec["name"], record)
    return ok({"name": spec["name"], "version": index})


def _member_set_draining(
    state: ControlState, args: dict[str, Any], cmd: Command, index: int
) -> Outcome:
    """args: {name, draining: bool}. A draining node reports not-ready but keeps serving."""
    record = state.members.get(args.get("name", ""))
    if record is None:
        return fail("not_found", f"node {args.get('name')} is not a member")
    updated = {**record, "draining": args["draining"], **_stamp(cmd, index)}
    state.members = _with(state.members, record["name"], updated)
    return ok({"name": record["name"], "draining": args["draining"], "version": index})


def _member_remove(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    record = state.members.get(args.get("name", ""))
    if record is None:
        return fail("not_found", f"node {args.get('name')} is not a member")
    state.members = _without(state.members, record["name"])
    return ok({"name": record["name"], "version": index})


# -- rate limits -------------------------------------------------------------------------


def _ratelimit_set(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {scope ("*" or a model id), requests_per_second > 0, burst >= 1}."""
    scope, rate, burst = args["scope"], args["requests_per_second"], args["burst"]
    mismatch = _version_problem(state.rate_limits.get(scope), args.get("expected_version"))
    if mismatch:
        return mismatch
    record = {"scope": scope, "requests_per_second": rate, "burst": burst, **_stamp(cmd, index)}
    state.rate_limits = _with(state.rate_limits, scope, record)
    return ok({"scope": scope, "version": index})


def _ratelimit_delete(
    state: ControlState, args: dict[str, Any], cmd: Command, index: int
) -> Outcome:
    scope = args.get("scope")
    if scope not in state.rate_limits:
        return fail("not_found", f"no rate limit for scope {scope}")
    state.rate_limits = _without(state.rate_limits, scope)
    return ok({"scope": scope, "version": index})


# -- coordinated shutdown ------------------------------------------------------------------


def _shutdown_plan(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Record a shutdown. args: {id, targets: {node name: boot id}, grace_period_secs,
    drain_delay_secs}. Each targeted node acts on it only while still running the boot
    named here, so replaying the log after a restart never stops a node again."""
    plan_id, targets = args["id"], args["targets"]
    for name in targets:
        if name not in state.members:
            return fail("not_found", f"node {name} is not a member")
    plan = {
        "id": plan_id,
        "targets": dict(targets),
        "grace_period_secs": args["grace_period_secs"],
        "drain_delay_secs": args["drain_delay_secs"],
        "scope": args.get("scope", "nodes"),
        "requested_at": cmd["at"],
        "requested_by": cmd["by"],
        "version": index,
    }
    shutdowns = _with(state.shutdowns, plan_id, plan)
    while len(shutdowns) > SHUTDOWN_PLANS_KEPT:
        del shutdowns[next(iter(shutdowns))]
    state.shutdowns = shutdowns
    return ok({"id": plan_id, "version": index})


# -- tenants and managed API keys -----------------------------------------------------------


def _tenant_create(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {name, description?}."""
    name = args["name"]
    if name in state.tenants:
        return fail("conflict", f"tenant {name} already exists")
    record = {
        "name": name,
        "status": "Active",
        "description": args.get("description"),
        "limits": dict(args.get("limits") or {}),
        "created_at": cmd["at"],
        "created_by": cmd["by"],
        **_stamp(cmd, index),
    }
    state.tenants = _with(state.tenants, name, record)
    return ok({"name": name, "version": index})


def _tenant_delete(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {name}. Refused while the tenant still owns active keys."""
    name = args.get("name")
    if name not in state.tenants:
        return fail("not_found", f"tenant {name} not found")
    owned = [
        k["id"] for k in state.api_keys.values() if k["tenant"] == name and k["status"] == "active"
    ]
    if owned:
        return fail("conflict", f"tenant {name} still has {len(owned)} active key(s); revoke them")
    models = [ref for ref, m in state.models.items() if m["tenant"] == name]
    if models:
        return fail("conflict", f"tenant {name} still has {len(models)} model(s); delete them")
    state.tenants = _without(state.tenants, name)
    _forget_usage(state, [f"tenant:{name}"])
    return ok({"name": name, "version": index})


def _key_create(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {"key": {id, name, tenant, role, prefix, hash, models, limits, expires_at,
    parent?, published_model?}}. The proposer generated the secret and sends only its hash.
    A key minted by another key names it as `parent`: it may be no wider than the parent
    (`_wider_than_parent`) and is revoked with it."""
    spec = args["key"]
    key_id, digest = spec["id"], spec["hash"]
    if key_id in state.api_keys or digest in state.key_hashes:
        return fail("conflict", "key id or hash already exists")
    role, tenant = spec["role"], spec.get("tenant")
    if role != "admin" and tenant not in state.tenants:
        return fail("not_found", f"tenant {tenant} not found")
    parent = spec.get("parent")
    if parent is not None:
        problem = _wider_than_parent(state, spec, parent, cmd["at"])
        if problem:
            return fail("forbidden", problem)
    if tenant is not None and not spec.get("published_model"):
        active = sum(
            1
            for k in state.api_keys.values()
            if k.get("tenant") == tenant and k["status"] == "active"
        )
        if active >= MAX_ACTIVE_KEYS_PER_TENANT:
            return fail(
                "limit_reached",
                f"tenant {tenant} has {active} active keys, the most it may have; "
                "revoke unused keys first",
                limit=MAX_ACTIVE_KEYS_PER_TENANT,
            )
    record: Record = {
        "id": key_id,
        "name": spec.get("name") or key_id,
        "tenant": tenant,
        "role": role,
        "prefix": spec.get("prefix"),
        "hash": digest,
        "models": spec.get("models"),
        "limits": dict(spec.get("limits") or {}),
        "published_model": spec.get("published_model"),
        "parent": parent,
        "expires_at": spec.get("expires_at"),
        "status": "active",
        "created_at": cmd["at"],
        "created_by": cmd["by"],
        **_stamp(cmd, index),
    }
    state.api_keys = _with(state.api_keys, key_id, record)
    state.key_hashes = _with(state.key_hashes, digest, key_id)
    state.auth_required = True
    return ok({"id": key_id, "version": index})


def _wider_than_parent(state: ControlState, spec: Record, parent_id: Any, now: float) -> str | None:
    """Why a key minted by `parent_id` would exceed its parent's scope, or None.

    The child must be in the parent's tenant, no more privileged, limited to a subset
    of its models, to limits no higher, and expire no later. `now` is the proposer's
    clock from the command, so every node judges the parent's expiry alike."""
    parent = state.api_keys.get(parent_id) if isinstance(parent_id, str) else None
    if parent is None or parent["status"] != "active":
        return f"the minting key {parent_id} is not an active key"
    expires = parent.get("expires_at")
    if expires is not None and expires <= now:
        return f"the minting key {parent_id} has expired"
    if parent["role"] not in ("admin", "minter") or parent.get("published_model"):
        return f"key {parent_id} may not mint keys"
    if parent["role"] == "minter":
        if spec.get("tenant") != parent.get("tenant"):
            return "a minted key must belong to its parent's tenant"
        if spec.get("role") not in ("minter", "user"):
            return "a minter may mint only minter or user keys"
    if parent.get("models"):  # None, or an empty list in old records, means every model
        models = spec.get("models")
        if models is None or not set(models) <= set(parent["models"]):
            return f"a minted key may use only models its parent may use: {parent['models']}"
    child_limits = spec.get("limits") or {}
    for name, ceiling in (parent.get("limits") or {}).items():
        value = child_limits.get(name)
        if not isinstance(value, int) or value > ceiling:
            return f"a minted key's {name} must be at most its parent's ({ceiling})"
    if expires is not None:
        child_expires = spec.get("expires_at")
        if not isinstance(child_expires, int | float) or child_expires > expires:
            return "a minted key must expire no later than its parent"
    return None


def _key_rotate(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {id, prefix, hash}: the old key stops working in the same step."""
    record = state.api_keys.get(args.get("id", ""))
    if record is None or record["status"] != "active":
        return fail("not_found", f"active key {args.get('id')} not found")
    digest = args["hash"]
    if digest in state.key_hashes:
        return fail("invalid", "a new, unused SHA-256 hex hash is required")
    hashes = _without(state.key_hashes, record["hash"])
    state.key_hashes = _with(hashes, digest, record["id"])
    updated = {
        **record,
        "hash": digest,
        "prefix": args.get("prefix"),
        "rotated_at": cmd["at"],
        **_stamp(cmd, index),
    }
    state.api_keys = _with(state.api_keys, record["id"], updated)
    return ok({"id": record["id"], "version": index})


def _key_revoke(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {id}. Revokes the key and every key minted from it, however indirectly.
    Idempotent: revoking a revoked key changes nothing."""
    record = state.api_keys.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"key {args.get('id')} not found")
    if record["status"] == "revoked":
        return ok({"id": record["id"], "version": record["version"], "revoked": []})
    doomed = [record["id"], *_descendants(state.api_keys, record["id"])]
    keys, hashes = dict(state.api_keys), dict(state.key_hashes)
    revoked = []
    for key_id in doomed:
        key = keys[key_id]
        if key["status"] == "active":
            hashes.pop(key["hash"], None)
            stamp = {"status": "revoked", "revoked_at": cmd["at"], **_stamp(cmd, index)}
            keys[key_id] = {**key, **stamp}
            revoked.append(key_id)
    state.api_keys = _forget_old_revoked(keys, record.get("tenant"))
    state.key_hashes = hashes
    _forget_usage(state, [f"key:{k}" for k in keys.keys() - state.api_keys.keys()])
    return ok({"id": record["id"], "version": index, "revoked": revoked})


def _descendants(keys: dict[str, Record], root: str) -> list[str]:
    """Ids of the keys minted from `root`, directly or through other minted keys."""
    children: dict[str, list[str]] = {}
    for key in keys.values():
        parent = key.get("parent")
        if parent is not None:
            children.setdefault(parent, []).append(key["id"])
    found, stack = [], list(children.get(root, ()))
    while stack:
        key_id = stack.pop()
        found.append(key_id)
        stack.extend(children.get(key_id, ()))
    return found


def _forget_old_revoked(keys: dict[str, Record], tenant: str | None) -> dict[str, Record]:
    """Keep only a tenant's most recently revoked records, so revoked keys stay bounded."""
    revoked = [k for k in keys.values() if k.get("tenant") == tenant and k["status"] == "revoked"]
    excess = len(revoked) - REVOKED_KEYS_KEPT_PER_TENANT
    kept = dict(keys)
    if excess > 0:
        for key in sorted(revoked, key=lambda k: (k["version"], k["id"]))[:excess]:
            del kept[key["id"]]
    return kept


def _forget_usage(state: ControlState, subjects: list[str]) -> None:
    """Drop the usage of objects that are gone, so usage stays bounded like them."""
    if any(subject in state.usage for subject in subjects):
        state.usage = {k: v for k, v in state.usage.items() if k not in subjects}


# -- authentication that outlives its credentials -------------------------------------------


def _auth_require(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """A node guarded by static credentials announces it: from now on the mesh never
    serves anonymous callers, whatever happens to its keys. args: {}."""
    state.auth_required = True
    return ok({"version": index})


def _token_revoke(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Revoke every token meshgate issued to a user so far. args: {subject}. Tokens
    carry the version current when they were issued; older ones stop working."""
    subject = args["subject"]
    state.token_versions = _with(state.token_versions, subject, index)
    return ok({"subject": subject, "version": index})


# -- intents carried out by every node on its hot state ------------------------------------


def _breaker_reset(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {worker_id: id | None (all)}. Every node resets the named circuit breakers."""
    worker_id = args.get("worker_id")
    if worker_id is not None and worker_id not in state.workers:
        return fail("not_found", f"worker {worker_id} not found")
    state.breaker_resets += 1
    return ok({"worker_id": worker_id, "version": index})


def _read_barrier(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """args: {}. Changes nothing: its proposer waits for it to learn it is current."""
    return ok({"index": index})


# -- model deployments, publishing and usage ---------------------------------------------------


def _model_put(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Create or update a model deployment. args: {"model": {name, tenant, selector, policy,
    policy_params, scaling, framework, storage_uri, description}, "create": bool,
    "expected_version"?}."""
    spec = args["model"]
    tenant = spec.get("tenant")
    if tenant not in state.tenants:
        return fail("not_found", f"tenant {tenant} not found")
    ref = f"{tenant}/{spec['name']}"
    current = state.models.get(ref)
    if args.get("create") and current is not None:
        return fail("conflict", f"model {spec['name']} already exists in {tenant}")
    if args.get("create"):
        owned = sum(1 for m in state.models.values() if m["tenant"] == tenant)
        if owned >= MAX_MODELS_PER_TENANT:
            return fail(
                "limit_reached",
                f"tenant {tenant} has {owned} models, the most it may have; delete some first",
                limit=MAX_MODELS_PER_TENANT,
            )
    if not args.get("create") and current is None:
        return fail("not_found", f"model {spec['name']} not found in {tenant}")
    mismatch = _version_problem(current, args.get("expected_version"))
    if mismatch:
        return mismatch
    record = {
        **(current or {"created_at": cmd["at"], "created_by": cmd["by"]}),
        **{k: spec.get(k) for k in MODEL_FIELDS},
        "ref": ref,
        **_stamp(cmd, index),
    }
    state.models = _with(state.models, ref, record)
    return ok({"ref": ref, "version": index})


def _model_delete(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    ref = args.get("ref")
    if ref not in state.models:
        return fail("not_found", f"model {ref} not found")
    if ref in state.published:
        return fail("conflict", f"model {ref} is published; unpublish it first")
    state.models = _without(state.models, ref)
    _forget_usage(state, [f"model:{ref}"])
    return ok({"ref": ref, "version": index})


def _publish_put(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Publish a model (with its own new key) or update a publication.
    args: {"ref", "publication": {...}, "key": {...} (on create), "create": bool}."""
    ref, publication = args.get("ref"), args["publication"]
    if ref not in state.models:
        return fail("not_found", f"model {ref} not found")
    current = state.published.get(ref)
    path = publication.get("externalPath")
    if any(p.get("externalPath") == path for r, p in state.published.items() if r != ref):
        return fail("conflict", f"external path {path} is taken")  # on create and update alike
    if args.get("create"):
        if current is not None:
            return fail("conflict", f"model {ref} is already published")
        tenant = state.models[ref]["tenant"]
        owned = sum(1 for p in state.published.values() if p.get("tenantId") == tenant)
        if owned >= MAX_PUBLICATIONS_PER_TENANT:
            return fail(
                "limit_reached",
                f"tenant {tenant} has {owned} published models, the most it may have",
                limit=MAX_PUBLICATIONS_PER_TENANT,
            )
        made = _key_create(state, {"key": args.get("key")}, cmd, index)
        if not made["ok"]:
            return made
        current = {"created_at": cmd["at"], "created_by": cmd["by"], "key_id": made["value"]["id"]}
    elif current is None:
        return fail("not_found", f"model {ref} is not published")
    record = {**current, **publication, "ref": ref, "status": "active", **_stamp(cmd, index)}
    state.published = _with(state.published, ref, record)
    return ok({"ref": ref, "key_id": record["key_id"], "version": index})


def _publish_delete(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Unpublish: the publication's key stops working in the same step."""
    ref = args.get("ref")
    if not isinstance(ref, str) or ref not in state.published:
        return fail("not_found", f"model {ref} is not published")
    record = state.published[ref]
    _key_revoke(state, {"id": record["key_id"]}, cmd, index)
    state.published = _without(state.published, ref)
    return ok({"ref": ref, "version": index})


# Usage counts are what workers claim: one flush adds at most this much to a subject, and
# totals saturate at 2**53 - 1 (JSON readers' largest exact integer; orjson refuses > 64 bits).
USAGE_DELTA_MAX: Final = 10**12
USAGE_TOTAL_MAX: Final = 2**53 - 1


def _usage_flush(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Add a node's batched usage. args: {"deltas": {subject: {requests, tokens, last_access,
    day}}}. `day` (proposer's UTC date) restarts `requests_today` when it changes.
    Malformed or negative counts refuse the batch; absurdly large ones are clamped to
    USAGE_DELTA_MAX, and totals saturate at USAGE_TOTAL_MAX, the same on every node."""
    deltas = args["deltas"]
    usage = dict(state.usage)
    clamped = 0
    for subject, delta in deltas.items():
        if not _usage_subject_exists(state, subject):
            continue  # its key, model or tenant is gone: its usage would never be removed
        requests, tokens = delta.get("requests", 0), delta.get("tokens", 0)
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (requests, tokens)
        ):
            return fail("invalid", "requests and tokens must be non-negative integers")
        if requests > USAGE_DELTA_MAX or tokens > USAGE_DELTA_MAX:
            clamped += 1
            requests, tokens = min(requests, USAGE_DELTA_MAX), min(tokens, USAGE_DELTA_MAX)
        before = usage.get(
            subject,
            {
                "total_requests": 0,
                "requests_today": 0,
                "tokens_used": 0,
                "day": None,
                "last_access": None,
            },
        )
        today = delta.get("day")
        usage[subject] = {
            "total_requests": min(before["total_requests"] + requests, USAGE_TOTAL_MAX),
            "requests_today": min(
                (before["requests_today"] if before["day"] == today else 0) + requests,
                USAGE_TOTAL_MAX,
            ),
            "tokens_used": min(before["tokens_used"] + tokens, USAGE_TOTAL_MAX),
            "day": today,
            "last_access": max(
                filter(None, (before["last_access"], delta.get("last_access"))), default=None
            ),
        }
    state.usage = usage
    return ok({"subjects": len(deltas), "clamped": clamped, "version": index})


def _usage_subject_exists(state: ControlState, subject: str) -> bool:
    kind, _, name = subject.partition(":")
    collection = {"key": state.api_keys, "model": state.models, "tenant": state.tenants}
    return name in collection.get(kind, {})


# -- tokenizers ----------------------------------------------------------------------


def _registration_problem(
    records: dict[str, Record], spec: Record, kind: str, most: int
) -> Outcome | None:
    """A taken name or id, or a full registry (tokenizers, WASM modules): names are unique,
    and a conflict names the record that holds the name (`<kind>_id`)."""
    existing = next((r for r in records.values() if r["name"] == spec["name"]), None)
    if existing is not None:
        said = {f"{kind.split()[-1]}_id": existing["id"]}
        return fail("conflict", f"a {kind} named {spec['name']!r} already exists", **said)
    if spec["id"] in records:
        return fail("conflict", f"{kind} id {spec['id']} already exists")
    if len(records) >= most:
        return fail(
            "limit_reached",
            f"the mesh has {len(records)} {kind}s, the most it may have; delete some first",
            limit=most,
        )
    return None


def _tokenizer_add(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Register a tokenizer. args: {"tokenizer": {id, name, source, files, chat_template,
    failure}}. Names are unique; the files are named by digest (every node fetches the
    bytes). `failure` says why a source gave no files: failed on every node."""
    spec = args["tokenizer"]
    taken = _registration_problem(state.tokenizers, spec, "tokenizer", MAX_TOKENIZERS)
    if taken:
        return taken
    record: Record = {
        "id": spec["id"],
        "name": spec["name"],
        "source": spec["source"],
        "files": {
            n: {"sha256": f["sha256"], "size": f["size"]}
            for n, f in (spec.get("files") or {}).items()
        },
        "chat_template": spec.get("chat_template"),
        "failure": spec.get("failure"),
        "created_at": cmd["at"],
        "created_by": cmd["by"],
        **_stamp(cmd, index),
    }
    state.tokenizers = _with(state.tokenizers, spec["id"], record)
    return ok({"tokenizer_id": spec["id"], "version": index})


def _tokenizer_remove(
    state: ControlState, args: dict[str, Any], cmd: Command, index: int
) -> Outcome:
    """Forget a tokenizer. args: {"id"}."""
    record = state.tokenizers.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"tokenizer {args.get('id')} not found")
    state.tokenizers = _without(state.tokenizers, record["id"])
    return ok({"tokenizer_id": record["id"], "version": index})


# -- WASM middleware ---------------------------------------------------------------------


def _wasm_add(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Register WASM modules, all or none. args: {"modules": [spec, ...]}, or {"module":
    spec} (one, as earlier releases wrote it); a spec is {id, name, sha256, size,
    attach_points, order?, enabled?, on_error?, limits?}. Names are unique; a module
    without an order runs after every module registered before it (earlier in the list
    included)."""
    specs = args["modules"] if "modules" in args else [args["module"]]
    modules = state.wasm_modules
    for spec in specs:
        taken = _registration_problem(modules, spec, "WASM module", MAX_WASM_MODULES)
        if taken:
            return taken
        modules = _with(modules, spec["id"], _wasm_record(modules, spec, cmd, index))
    state.wasm_modules = modules
    if "modules" in args:
        return ok({"module_ids": [spec["id"] for spec in specs], "version": index})
    return ok({"module_id": specs[0]["id"], "version": index})


def _wasm_record(modules: dict[str, Record], spec: Record, cmd: Command, index: int) -> Record:
    last = max((m["order"] for m in modules.values()), default=-1)
    return {
        "id": spec["id"],
        "name": spec["name"],
        "sha256": spec["sha256"],
        "size": spec["size"],
        "attach_points": list(spec["attach_points"]),
        "order": spec["order"] if spec.get("order") is not None else last + 1,
        "enabled": spec.get("enabled", True) is not False,
        "on_error": spec.get("on_error") or "fail",
        "limits": {**WASM_DEFAULT_LIMITS, **_given(spec.get("limits") or {})},
        "created_at": cmd["at"],
        "created_by": cmd["by"],
        **_stamp(cmd, index),
    }


def _wasm_update(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Change a module's enabled flag, order, on_error or limits. args: {"id", "changes"}."""

    def changed(record: Record) -> Record:
        changes = dict(args["changes"])
        if "limits" in changes:
            changes["limits"] = {**record["limits"], **_given(changes["limits"])}
        return {**record, **changes, **_stamp(cmd, index)}

    return _wasm_change(state, args, index, changed)


def _wasm_remove(state: ControlState, args: dict[str, Any], cmd: Command, index: int) -> Outcome:
    """Forget a module. args: {"id"}. A node lets the calls already running finish."""
    return _wasm_change(state, args, index, lambda _: None)


def _wasm_change(
    state: ControlState, args: dict[str, Any], index: int, change: Callable[[Record], Record | None]
) -> Outcome:
    """Replace the module `args["id"]` names with `change(record)`; None removes it."""
    record = state.wasm_modules.get(args.get("id", ""))
    if record is None:
        return fail("not_found", f"WASM module {args.get('id')} not found")
    new = change(record)
    modules = state.wasm_modules
    state.wasm_modules = (
        _without(modules, record["id"]) if new is None else _with(modules, record["id"], new)
    )
    return ok({"module_id": record["id"], "version": index})


def _given(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


Handler = Callable[[ControlState, dict[str, Any], Command, int], Outcome]

_HANDLERS: Final[dict[str, Handler]] = {
    "worker.add": _worker_add,
    "worker.update": _worker_update,
    "worker.set_status": _worker_set_status,
    "worker.remove": _worker_remove,
    "policy.set": _policy_set,
    "policy.delete": _policy_delete,
    "config.set": _config_set,
    "config.delete": _config_delete,
    "member.upsert": _member_upsert,
    "member.set_draining": _member_set_draining,
    "member.remove": _member_remove,
    "ratelimit.set": _ratelimit_set,
    "ratelimit.delete": _ratelimit_delete,
    "shutdown.plan": _shutdown_plan,
    "tenant.create": _tenant_create,
    "tenant.delete": _tenant_delete,
    "key.create": _key_create,
    "key.rotate": _key_rotate,
    "key.revoke": _key_revoke,
    "auth.require": _auth_require,
    "token.revoke": _token_revoke,
    "breaker.reset": _breaker_reset,
    "model.put": _model_put,
    "model.delete": _model_delete,
    "publish.put": _publish_put,
    "publish.delete": _publish_delete,
    "usage.flush": _usage_flush,
    "tokenizer.add": _tokenizer_add,
    "tokenizer.remove": _tokenizer_remove,
    "wasm.add": _wasm_add,
    "wasm.update": _wasm_update,
    "wasm.remove": _wasm_remove,
    "read.barrier": _read_barrier,
}
if _HANDLERS.keys() != VALIDATORS.keys():  # apply asks every op's rule before its handler
    raise ImportError(f"ops without both a handler and a rule: {_HANDLERS.keys() ^ VALIDATORS}")
