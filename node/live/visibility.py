"""Which control-state changes a caller of `GET /ws` may watch, and what of them it may read.

Every node fans the same applied commands out to its WebSocket clients, so the
rules that keep tenants apart and secrets out of the wire live here, as pure
functions of one applied command: they are unit-tested as a table and can be
reviewed on their own, without a socket or a Raft log.

- Admins see every change, refusals included (an operator wants to see them).
- A user sees only committed (ok) changes that concern its own tenant:
  `tenant.*` naming it, `key.*` whose args (or, for rotate and revoke, the key
  record) carry it, and `model.*`/`publish.*`/`usage.*` whose args carry it.
  Anything else (workers, members, config, policies, rate limits, shutdowns,
  breakers, and any op family added later) is hidden: deny by default.
- A reset (a snapshot was loaded) goes to everyone: each client must resync.
- No message carries a secret: fields named like secrets are dropped at any
  depth (`api_key`, `hash`, `key`, `secret`, `password`, `token`, ...; a key's
  `prefix` stays), and user:password@ in URLs is masked. The paths of dropped
  fields are listed, so a client can tell that e.g. a worker's api_key changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mesh.events import Applied

# Op families a user never sees, whatever the args say (the rest is denied by default too).
USER_HIDDEN_FAMILIES: Final = frozenset(
    {"worker", "member", "config", "policy", "ratelimit", "shutdown", "breaker", "auth", "token"}
)
# Op families a user sees when the change concerns its tenant.
TENANT_FAMILIES: Final = frozenset({"tenant", "key", "model", "publish", "usage"})
# A field is a secret when one of the words of its name is one of these.
SECRET_WORDS: Final = frozenset(
    {
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "hash",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
MASK: Final = "***"

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]+@")

KeyTenant = Callable[[str], str | None]


def _no_key(_: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who watches a feed, reduced to what the rules need."""

    id: str
    admin: bool
    tenant: str | None = None

    @classmethod
    def of(cls, principal: Any) -> Viewer:
        """From a `node.auth.Principal` (older ones have no `tenant`)."""
        tenant = getattr(principal, "tenant", None)
        return cls(
            id=str(principal.id),
            admin=principal.role == "admin",
            tenant=tenant if isinstance(tenant, str) and tenant else None,
        )


# -- visibility -----------------------------------------------------------------------------


def family(op: Any) -> str:
    """`worker` for `worker.add`; "" for anything that is not an op name."""
    return op.partition(".")[0] if isinstance(op, str) else ""


def may_see(viewer: Viewer, applied: Applied, key_tenant: KeyTenant = _no_key) -> bool:
    """May `viewer` receive this applied command? `key_tenant(id)` is the tenant of a
    managed key (a key's tenant never changes, so any later state answers right)."""
    command, outcome = applied.command, applied.outcome
    if command is None:
        return True  # a reset: everyone must resync
    if viewer.admin:
        return True
    if not viewer.tenant or not isinstance(command, dict):
        return False
    if not isinstance(outcome, dict) or outcome.get("ok") is not True:
        return False  # refusals are for admins
    kind = family(command.get("op"))
    if kind in USER_HIDDEN_FAMILIES or kind not in TENANT_FAMILIES:
        return False
    args = command.get("args")
    tenants = concerned_tenants(kind, args if isinstance(args, dict) else {}, key_tenant)
    return tenants == {viewer.tenant}


def concerned_tenants(kind: str, args: dict[str, Any], key_tenant: KeyTenant) -> set[str | None]:
    """Every tenant a change names. A change naming none, or several, is shown to no user."""
    if kind == "tenant":
        return {_tenant(args.get("name"))}
    found: set[str | None] = set()
    if "tenant" in args:
        found.add(_tenant(args["tenant"]))
    for value in args.values():  # {"key": {..., "tenant"}}, {"model": {..., "tenant"}}
        if isinstance(value, dict) and "tenant" in value:
            found.add(_tenant(value["tenant"]))
    ref = args.get("ref")  # model and publication refs are "<tenant>/<name>"
    if kind in ("model", "publish") and isinstance(ref, str):
        owner, slash, _ = ref.partition("/")
        found.add(owner if slash and owner else None)
    key_id = args.get("id")
    if kind == "key" and isinstance(key_id, str):
        found.add(_tenant(key_tenant(key_id)))
    return found


def _tenant(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- redaction ------------------------------------------------------------------------------


def words(name: str) -> list[str]:
    """`apiKey`, `api-key`, `API_KEY` -> ["api", "key"]."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_field(name: Any, value: Any) -> bool:
    """Is `name: value` a secret? Counters and flags never are (`tokens_used: 12`); a
    field whose name ends in "key(s)" is, unless it holds key *records* (mappings,
    which are walked instead: `{"key": {"prefix": ..., "hash": ...}}`)."""
    if not isinstance(name, str) or isinstance(value, bool | int | float):
        return False
    parts = words(name)
    if not parts:
        return False
    if parts[-1] in ("key", "keys"):
        records = (
            isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
        )
        return not (isinstance(value, dict) or records)
    joined = "".join(parts)
    return joined in SECRET_WORDS or any(part in SECRET_WORDS for part in parts)


def scrub(text: str) -> str:
    """Mask the user:password@ of any URL in `text`."""
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def redact(value: Any, path: str = "", dropped: list[str] | None = None) -> Any:
    """A copy of `value` without secret fields at any depth; their paths go to `dropped`."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for name, item in value.items():
            where = f"{path}.{name}" if path else str(name)
            if is_secret_field(name, item):
                if dropped is not None:
                    dropped.append(where)
                continue
            out[name] = redact(item, where, dropped)
        return out
    if isinstance(value, list | tuple):
        return [redact(item, f"{path}[{i}]", dropped) for i, item in enumerate(value)]
    if isinstance(value, str):
        return scrub(value)
    return value


def redact_args(op: Any, args: Any, dropped: list[str] | None = None) -> Any:
    """Redact a command's args (or outcome). The top-level `key` of `config.*` is a
    config key's name, not a secret, so it stays; its value is still walked."""
    if family(op) == "config" and isinstance(args, dict) and isinstance(args.get("key"), str):
        rest = redact({k: v for k, v in args.items() if k != "key"}, "", dropped)
        return {"key": scrub(args["key"]), **rest}
    return redact(args, "", dropped)


# -- messages -------------------------------------------------------------------------------


def change_message(applied: Applied) -> dict[str, Any]:
    """The message every allowed client gets for one applied command (already redacted).

    `{"type": "change", "index", "op", "at", "by", "ok", "object": <the command's
    args>, "outcome": <its value, or {"error", "message", ...} when refused>,
    "redacted": [paths of dropped fields]}`, or `{"type": "reset", "index"}`.
    """
    command = applied.command
    if command is None:
        return {"type": "reset", "index": applied.index}
    if not isinstance(command, dict):  # never written by meshgate; shown as a refusal
        command = {}
    op = command.get("op")
    outcome = applied.outcome if isinstance(applied.outcome, dict) else {}
    succeeded = outcome.get("ok") is True
    dropped: list[str] = []
    obj = redact_args(op, command.get("args"), dropped)
    if succeeded:
        result = redact_args(op, outcome.get("value"))
    else:
        result = redact_args(op, {k: v for k, v in outcome.items() if k != "ok"})
    return {
        "type": "change",
        "index": applied.index,
        "op": op if isinstance(op, str) else None,
        "at": command.get("at"),
        "by": scrub(command["by"]) if isinstance(command.get("by"), str) else None,
        "ok": succeeded,
        "object": obj,
        "outcome": result,
        "redacted": dropped,
    }
