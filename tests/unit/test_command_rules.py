"""Each command's rule (`mesh.commands.command_problem`) and apply agree.

The proposer asks the rule for a 400 before anything enters the log; apply asks
the same rule first. A table of arguments per op pins both halves: what the rule
refuses, apply refuses as `invalid` with the same message and changes nothing;
what it accepts, apply on a state that holds the objects named accepts too.

The `KEPT` table is replay compatibility: commands an earlier apply accepted, in
shapes a stricter rule could be tempted to refuse. A journal written before the
rules moved replays them; refusing one would make a replica that replays history
diverge from one that applied it.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest

from mesh.commands import ALL_OPS, VALIDATORS, command_problem, make
from mesh.state import ControlState

H1, H2, H3, H4 = "1" * 64, "2" * 64, "3" * 64, "4" * 64
TK1 = "00000000-0000-4000-8000-000000000001"
TK2 = "00000000-0000-4000-8000-000000000002"
FILES = {"tokenizer.json": {"sha256": "a" * 64, "size": 10}}
ON_REQUEST = ["OnRequest"]

# A state holding one object of each kind the commands below name (indexes 1..13).
SETUP: list[tuple[str, dict[str, Any]]] = [
    ("tenant.create", {"name": "t1"}),
    ("tenant.create", {"name": "t2"}),
    ("key.create", {"key": {"id": "k1", "hash": H1, "tenant": "t1", "role": "minter"}}),
    ("worker.add", {"worker": {"id": "w1", "url": "http://10.0.0.1:8000"}}),
    ("member.upsert", {"member": {"name": "n1", "boot_id": "b1", "http_url": "http://n1"}}),
    ("model.put", {"model": {"name": "bot", "tenant": "t1", "selector": {"x": 1}}, "create": 1}),
    ("model.put", {"model": {"name": "pub", "tenant": "t1", "selector": {"x": 1}}, "create": 1}),
    ("config.set", {"key": "c1", "value": 1}),
    ("tokenizer.add", {"tokenizer": {"id": TK1, "name": "tok", "source": "/t", "files": FILES}}),
    ("policy.set", {"model": "m", "policy": "random"}),
    (
        "wasm.add",
        {
            "module": {
                "id": "m1",
                "name": "auth",
                "sha256": H1,
                "size": 9,
                "attach_points": ON_REQUEST,
            }
        },
    ),
    ("ratelimit.set", {"scope": "*", "requests_per_second": 1, "burst": 1}),
    (
        "publish.put",
        {
            "ref": "t1/pub",
            "publication": {"externalPath": "/models/pub"},
            "key": {"id": "p1", "hash": H2, "tenant": "t1", "role": "user"},
            "create": True,
        },
    ),
]


def _state() -> ControlState:
    state = ControlState()
    for index, (op, args) in enumerate(SETUP, start=1):
        assert state.apply(make(op, args, by="t"), index)["ok"], op
    return state


# Arguments that keep their op's rule and that apply accepts on `_state()`.
GOOD: dict[str, dict[str, Any]] = {
    "worker.add": {"worker": {"id": "w2", "url": "http://10.0.0.2:8000", "priority": 3}},
    "worker.update": {"id": "w1", "changes": {"cost": 2.5}, "expected_version": 4},
    "worker.set_status": {"id": "w1", "status": "ready"},
    "worker.remove": {"id": "w1"},
    "policy.set": {"model": "m2", "policy": "p", "params": {"a": 1}},
    "policy.delete": {"model": "m"},
    "config.set": {"key": "c2", "value": None, "expected_version": 0},
    "config.delete": {"key": "c1", "expected_version": 8},
    "member.upsert": {"member": {"name": "n2", "boot_id": "b", "http_url": "http://n2"}},
    "member.set_draining": {"name": "n1", "draining": True},
    "member.remove": {"name": "n1"},
    "ratelimit.set": {"scope": "m", "requests_per_second": 0.5, "burst": 1},
    "ratelimit.delete": {"scope": "*"},
    "shutdown.plan": {
        "id": "s1",
        "targets": {"n1": "b1"},
        "grace_period_secs": 0,
        "drain_delay_secs": 86400,
    },
    "tenant.create": {"name": "t3"},
    "tenant.delete": {"name": "t2"},
    "key.create": {"key": {"id": "k2", "hash": H3, "role": "admin"}},
    "key.rotate": {"id": "k1", "hash": H4},
    "key.revoke": {"id": "k1"},
    "auth.require": {},
    "token.revoke": {"subject": "alice"},
    "breaker.reset": {"worker_id": None},
    "model.put": {"model": {"name": "bot", "tenant": "t1", "selector": {"labels": {}}}},
    "model.delete": {"ref": "t1/bot"},
    "publish.put": {"ref": "t1/pub", "publication": {"description": "d"}},
    "publish.delete": {"ref": "t1/pub"},
    "usage.flush": {"deltas": {"key:k1": {"requests": 1, "tokens": 2}}},
    "tokenizer.add": {
        "tokenizer": {"id": TK2, "name": "tok2", "source": "hf/x", "files": FILES},
    },
    "tokenizer.remove": {"id": TK1},
    "wasm.add": {
        "module": {
            "id": "m2",
            "name": "map",
            "sha256": H2,
            "size": 1,
            "attach_points": ["OnRequest", "OnResponse"],
            "order": 0,
            "enabled": False,
            "on_error": "continue",
            "limits": {"timeout_ms": 10, "memory_bytes": None},
        }
    },
    "wasm.update": {"id": "m1", "changes": {"enabled": False, "limits": {"timeout_ms": 5}}},
    "wasm.remove": {"id": "m1"},
    "read.barrier": {},
}


def _module(**fields: Any) -> dict[str, Any]:
    """`wasm.add` arguments: a good module, but for `fields`."""
    spec = {"id": "m", "name": "n", "sha256": H3, "size": 1, "attach_points": ON_REQUEST}
    return {"module": {**spec, **fields}}


# Arguments that break their op's rule, with the problem the rule names.
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("worker.add", {}, "worker must be a mapping"),
    ("worker.add", {"worker": {"id": "w2"}}, "worker id and url are required strings"),
    ("worker.add", {"worker": {"id": "w2", "url": "u", "cost": -1}}, "cost must be >= 0"),
    ("worker.update", {"id": "w1", "changes": {}}, "changes must be a non-empty mapping"),
    ("worker.update", {"id": "w1", "changes": {"url": "u"}}, "unknown worker field 'url'"),
    (
        "worker.update",
        {"id": "w1", "changes": {"cost": 1}, "expected_version": -1},
        "expected_version must be a non-negative integer",
    ),
    ("worker.set_status", {"id": "w1", "status": "gone"}, "status must be one of"),
    ("policy.set", {"model": "", "policy": "p"}, "model must be a non-empty string"),
    ("policy.set", {"model": "m", "policy": "p", "params": None}, "params a mapping"),
    ("config.set", {"key": 3, "value": 1}, "key must be a non-empty string"),
    ("config.delete", {"key": "c1", "expected_version": True}, "expected_version must be"),
    ("member.upsert", {"member": {"name": "n2"}}, "boot_id and http_url must be strings"),
    ("member.set_draining", {"name": "n1", "draining": "yes"}, "draining must be true or false"),
    ("ratelimit.set", {"scope": "*", "requests_per_second": math.inf, "burst": 1}, "above 0"),
    ("ratelimit.set", {"scope": "*", "requests_per_second": 1, "burst": 0.5}, "at least 1"),
    ("shutdown.plan", {"id": "s1", "targets": {}}, "targets must name at least one node"),
    (
        "shutdown.plan",
        {"id": "s1", "targets": {"n1": 1}, "grace_period_secs": 1, "drain_delay_secs": 1},
        "each target maps a node name to its boot id",
    ),
    (
        "shutdown.plan",
        {"id": "s1", "targets": {"n1": "b1"}, "grace_period_secs": 86401, "drain_delay_secs": 0},
        "grace_period_secs must be a number of seconds from 0 to 86400",
    ),
    ("tenant.create", {"name": ""}, "tenant name must be a non-empty string"),
    ("key.create", {"key": {"id": "k2", "hash": "short", "role": "user"}}, "SHA-256 hex hash"),
    ("key.create", {"key": {"id": "k2", "hash": H3, "role": "root"}}, "role must be one of"),
    ("key.rotate", {"id": "k1", "hash": None}, "SHA-256 hex hash is required"),
    ("token.revoke", {"subject": "x" * 257}, "subject must be a non-empty string"),
    ("model.put", {"model": {"name": "bot", "tenant": "t1"}}, "selector must name"),
    ("model.put", {"model": "bot"}, "model must be a mapping with a non-empty name"),
    ("publish.put", {"ref": "t1/bot", "publication": []}, "publication must be a mapping"),
    (
        "publish.put",
        {"ref": "t1/bot", "publication": {}, "create": True, "key": {"id": "p2"}},
        "key id and a SHA-256 hex hash are required",
    ),
    ("usage.flush", {"deltas": []}, "deltas must be a mapping"),
    ("usage.flush", {"deltas": {"key:k1": 5}}, "each delta must be a mapping keyed by subject"),
    ("read.barrier", {"x": 1}, "takes no arguments"),
    ("tokenizer.add", {"tokenizer": []}, "tokenizer must be a mapping"),
    (
        "tokenizer.add",
        {"tokenizer": {"id": "../x", "name": "n", "source": "s", "files": FILES}},
        "tokenizer id must be a UUID",
    ),
    (
        "tokenizer.add",
        {"tokenizer": {"id": TK1.replace("-", ""), "name": "n", "source": "s", "files": FILES}},
        "tokenizer id must be a UUID",
    ),
    (
        "tokenizer.add",
        {"tokenizer": {"id": TK1, "name": "", "source": "s", "files": FILES}},
        "name must be a string of 1 to 128 characters",
    ),
    (
        "tokenizer.add",
        {"tokenizer": {"id": TK1, "name": "n", "source": "s", "files": {}}},
        "files must map 1 to 16 file names",
    ),
    (
        "tokenizer.add",
        {
            "tokenizer": {
                "id": TK1,
                "name": "n",
                "source": "s",
                "files": {"x.json": FILES["tokenizer.json"]},
            }
        },
        "files must include tokenizer.json",
    ),
    (
        "tokenizer.add",
        {
            "tokenizer": {
                "id": TK1,
                "name": "n",
                "source": "s",
                "files": {**FILES, "../x": FILES["tokenizer.json"]},
            }
        },
        "must be a plain file name",
    ),
    (
        "tokenizer.add",
        {
            "tokenizer": {
                "id": TK1,
                "name": "n",
                "source": "s",
                "files": {"tokenizer.json": {"sha256": "A" * 64, "size": 1}},
            }
        },
        "must hold a sha256",
    ),
    (
        "tokenizer.add",
        {
            "tokenizer": {
                "id": TK1,
                "name": "n",
                "source": "s",
                "files": {"tokenizer.json": {"sha256": "a" * 64, "size": -1}},
            }
        },
        "must hold a size",
    ),
    (
        "tokenizer.add",
        {"tokenizer": {"id": TK1, "name": "n", "source": "s", "files": FILES, "chat_template": ""}},
        "chat_template must be null or a string",
    ),
    ("wasm.add", {"module": None}, "module must be a mapping"),
    ("wasm.add", _module(sha256="x"), "sha256 must be 64 lower-case hex digits"),
    ("wasm.add", _module(size=0), "size must be a number of bytes above 0"),
    ("wasm.add", _module(attach_points=["OnBoot"]), "attach_points must list one or both of"),
    (
        "wasm.add",
        _module(attach_points=[{"Middleware": "OnRequest"}]),
        "attach_points must list one or both of",
    ),
    ("wasm.add", _module(on_error="ignore"), "on_error must be one of"),
    ("wasm.add", {"modules": []}, "modules must list 1 to 16 modules"),
    ("wasm.add", {"modules": [_module()["module"]] * 17}, "modules must list 1 to 16 modules"),
    (
        "wasm.add",
        {"modules": [_module()["module"], _module(size=0)["module"]]},
        "modules[1]: size must be a number of bytes above 0",
    ),
    ("wasm.add", {**_module(), "modules": [_module()["module"]]}, "give module or modules"),
    ("wasm.update", {"id": "m1", "changes": {}}, "changes must be a non-empty mapping"),
    ("wasm.update", {"id": "m1", "changes": {"name": "x"}}, "unknown module field 'name'"),
    ("wasm.update", {"id": "m1", "changes": {"order": -1}}, "order must be an integer"),
    (
        "wasm.update",
        {"id": "m1", "changes": {"limits": {"timeout_ms": 0}}},
        "limits.timeout_ms must be an integer from 1 to 60000",
    ),
    (
        "wasm.update",
        {"id": "m1", "changes": {"limits": {"fuel": 1}}},
        "limits must be a mapping of timeout_ms and memory_bytes",
    ),
]

# Accepted by apply before the rules moved into mesh.commands: they must stay accepted.
KEPT: list[tuple[str, dict[str, Any]]] = [
    ("worker.add", {"worker": {"id": "w2", "url": "u", "shape": "odd", "model_id": None}}),
    ("worker.set_status", {"id": "w1", "status": "failed", "job_status": "?", "metadata": 1}),
    ("policy.set", {"model": "m", "policy": ""}),  # the registry is the proposer's check
    ("config.set", {"key": "c1", "value": {"any": ["json"]}}),
    ("member.upsert", {"member": {"name": "n2", "boot_id": "", "http_url": ""}}),
    ("ratelimit.set", {"scope": "x", "requests_per_second": 10**9, "burst": 1.5}),
    (
        "shutdown.plan",
        {
            "id": "s2",
            "targets": {"n1": ""},
            "grace_period_secs": 0.0,
            "drain_delay_secs": 0,
            "scope": 7,
        },
    ),
    ("tenant.create", {"name": "x" * 500, "limits": None}),
    ("key.create", {"key": {"id": "", "hash": H3, "role": "user", "tenant": "t1"}}),
    ("key.create", {"key": {"id": "k3", "hash": H3, "role": "admin", "expires_at": -5}}),
    ("key.rotate", {"id": "k1", "hash": "z" * 64}),  # never hex-checked
    ("token.revoke", {"subject": "x" * 256}),
    ("model.put", {"model": {"name": "bot", "tenant": "t1", "selector": {"x": 1}}, "create": 0}),
    ("publish.put", {"ref": "t1/pub", "publication": {}, "key": "ignored: not a create"}),
    ("usage.flush", {"deltas": {}}),
    ("usage.flush", {"deltas": {"key:gone": {"requests": -1, "tokens": "x"}}}),
]


def _apply(op: str, args: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Apply one command to `_state()`: its outcome, and the state's contents around it."""
    state = _state()
    before = _contents(state)
    outcome = state.apply(make(op, args, by="t"), len(SETUP) + 1)
    return outcome, before, _contents(state)


def _contents(state: ControlState) -> Any:
    """Everything a command may change (the request memory and applied index aside)."""
    kept = {k: v for k, v in vars(state).items() if k not in ("requests", "applied_index")}
    return pickle.loads(pickle.dumps(kept))


def test_every_op_has_one_rule() -> None:
    assert VALIDATORS.keys() == set(ALL_OPS)
    assert GOOD.keys() == set(ALL_OPS)


@pytest.mark.parametrize("op", sorted(GOOD))
def test_good_arguments_keep_the_rule_and_apply(op: str) -> None:
    assert command_problem(op, GOOD[op]) is None
    outcome, _, _ = _apply(op, GOOD[op])
    assert outcome["ok"], outcome


@pytest.mark.parametrize(("op", "args", "problem"), BAD)
def test_a_broken_rule_is_refused_by_both_halves_alike(
    op: str, args: dict[str, Any], problem: str
) -> None:
    said = command_problem(op, args)
    assert said is not None and problem in said
    outcome, before, after = _apply(op, args)
    assert outcome == {"ok": False, "error": "invalid", "message": said}
    assert after == before


@pytest.mark.parametrize(("op", "args"), KEPT)
def test_what_apply_accepted_before_stays_accepted(op: str, args: dict[str, Any]) -> None:
    assert command_problem(op, args) is None
    outcome, _, _ = _apply(op, args)
    assert outcome["ok"], outcome


@pytest.mark.parametrize("args", [{"x": 1}, {"worker": {"id": [], "url": {}}}, {"deltas": 1}])
def test_rules_never_raise_on_hostile_arguments(args: dict[str, Any]) -> None:
    for op in ALL_OPS:
        problem = command_problem(op, args)
        assert problem is None or isinstance(problem, str)
