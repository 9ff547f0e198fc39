"""The state machine's mesh, tenancy, model and usage commands."""

from __future__ import annotations

import pickle
from typing import Any

from mesh.commands import make
from mesh.state import ControlState

H1, H2, H3 = "a" * 64, "b" * 64, "c" * 64


class Log:
    def __init__(self) -> None:
        self.state = ControlState()
        self.index = 0

    def run(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self.index += 1
        return self.state.apply(make(op, args, by="test"), self.index)


def _key(key_id: str, digest: str, tenant: str = "t1", role: str = "user") -> dict[str, Any]:
    return {
        "key": {
            "id": key_id,
            "hash": digest,
            "tenant": tenant,
            "role": role,
            "prefix": "mg_abc",
            "limits": {"requests_per_minute": 5},
        }
    }


def test_tenants_and_keys() -> None:
    log = Log()
    assert log.run("key.create", _key("k1", H1))["error"] == "not_found"  # no such tenant
    assert log.run("tenant.create", {"name": "t1"})["ok"]
    assert log.run("tenant.create", {"name": "t1"})["error"] == "conflict"
    assert log.run("key.create", _key("k1", H1))["ok"]
    assert log.state.key_hashes == {H1: "k1"}
    assert log.run("key.create", _key("k2", H1))["error"] == "conflict"  # same hash
    assert (
        log.run("key.create", {"key": {"id": "k3", "hash": "short", "role": "user"}})["error"]
        == "invalid"
    )
    assert log.run("tenant.delete", {"name": "t1"})["error"] == "conflict"  # owns a key

    assert log.run("key.rotate", {"id": "k1", "prefix": "mg_new", "hash": H2})["ok"]
    assert log.state.key_hashes == {H2: "k1"}  # the old hash is gone in the same step
    assert log.run("key.rotate", {"id": "k1", "hash": H2})["error"] == "invalid"  # reused

    assert log.run("key.revoke", {"id": "k1"})["ok"]
    assert log.state.key_hashes == {} and log.state.api_keys["k1"]["status"] == "revoked"
    version = log.state.api_keys["k1"]["version"]
    assert log.run("key.revoke", {"id": "k1"})["ok"]  # idempotent
    assert log.state.api_keys["k1"]["version"] == version
    assert log.run("key.rotate", {"id": "k1", "hash": H3})["error"] == "not_found"
    assert log.run("tenant.delete", {"name": "t1"})["ok"]


def test_models_publications_and_their_keys() -> None:
    log = Log()
    log.run("tenant.create", {"name": "t1"})
    model = {"name": "bot", "tenant": "t1", "selector": {"model_id": "llama"}}
    assert log.run("model.put", {"model": model, "create": False})["error"] == "not_found"
    assert log.run("model.put", {"model": model, "create": True})["ok"]
    assert log.run("model.put", {"model": model, "create": True})["error"] == "conflict"
    assert (
        log.run("model.put", {"model": {**model, "selector": {}}, "create": False})["error"]
        == "invalid"
    )
    publication = {"externalPath": "/models/bot", "rateLimiting": {"requestsPerMinute": 3}}
    published = log.run(
        "publish.put",
        {"ref": "t1/bot", "publication": publication, "key": _key("p1", H1)["key"], "create": True},
    )
    assert published["ok"] and published["value"]["key_id"] == "p1"
    assert log.state.key_hashes == {H1: "p1"}
    again = log.run(
        "publish.put",
        {"ref": "t1/bot", "publication": publication, "key": _key("p2", H2)["key"], "create": True},
    )
    assert again["error"] == "conflict" and "p2" not in log.state.api_keys  # nothing half-made
    assert log.run("model.delete", {"ref": "t1/bot"})["error"] == "conflict"  # published
    assert log.run("tenant.delete", {"name": "t1"})["error"] == "conflict"
    assert log.run("publish.delete", {"ref": "t1/bot"})["ok"]
    assert log.state.api_keys["p1"]["status"] == "revoked" and log.state.key_hashes == {}
    assert log.run("model.delete", {"ref": "t1/bot"})["ok"]


def test_usage_deltas_add_up_and_days_roll() -> None:
    log = Log()
    assert log.run("tenant.create", {"name": "t1"})["ok"]
    assert log.run("key.create", _key("k1", H1))["ok"]
    delta = {"requests": 2, "tokens": 10, "last_access": 100.0, "day": "2026-11-21"}
    assert log.run("usage.flush", {"deltas": {"key:k1": delta}})["ok"]
    assert log.run("usage.flush", {"deltas": {"key:k1": {**delta, "last_access": 50.0}}})["ok"]
    usage = log.state.usage["key:k1"]
    assert usage == {
        "total_requests": 4,
        "requests_today": 4,
        "tokens_used": 20,
        "day": "2026-11-21",
        "last_access": 100.0,
    }
    log.run("usage.flush", {"deltas": {"key:k1": {**delta, "day": "2026-11-22"}}})
    assert log.state.usage["key:k1"]["requests_today"] == 2
    assert log.state.usage["key:k1"]["total_requests"] == 6
    bad = log.run("usage.flush", {"deltas": {"key:k1": {"requests": -1}}})
    assert bad["error"] == "invalid" and log.state.usage["key:k1"]["total_requests"] == 6


def test_members_rate_limits_shutdowns_and_resets() -> None:
    log = Log()
    member = {"name": "n1", "raft_address": "h:1", "http_url": "http://h:2", "boot_id": "b1"}
    assert log.run("member.upsert", {"member": member})["ok"]
    assert log.run("member.upsert", {"member": {**member, "name": "n2"}})["error"] == "conflict"
    assert log.run("member.set_draining", {"name": "n1", "draining": True})["ok"]
    log.run("member.upsert", {"member": member})
    assert log.state.members["n1"]["draining"] is True  # same boot keeps the flag
    log.run("member.upsert", {"member": {**member, "boot_id": "b2"}})
    assert log.state.members["n1"]["draining"] is False  # a new boot clears it

    assert (
        log.run("ratelimit.set", {"scope": "*", "requests_per_second": 0, "burst": 1})["error"]
        == "invalid"
    )
    assert log.run("ratelimit.set", {"scope": "*", "requests_per_second": 5.0, "burst": 5.0})["ok"]
    plan = {"id": "p1", "targets": {"n1": "b2"}, "grace_period_secs": 1, "drain_delay_secs": 0}
    assert log.run("shutdown.plan", {**plan, "targets": {"ghost": "x"}})["error"] == "not_found"
    assert log.run("shutdown.plan", plan)["ok"]
    assert log.state.shutdowns["p1"]["targets"] == {"n1": "b2"}
    assert log.run("breaker.reset", {"worker_id": "nope"})["error"] == "not_found"
    assert log.run("breaker.reset", {"worker_id": None})["ok"]
    assert log.state.breaker_resets == 1
    restored = pickle.loads(pickle.dumps(log.state))
    assert vars(restored) == vars(log.state)


def test_usage_of_vanished_objects_is_not_kept() -> None:
    log = Log()
    assert log.run("tenant.create", {"name": "t1"})["ok"]
    assert log.run("key.create", _key("k1", H1))["ok"]
    delta = {"requests": 1, "tokens": 1, "last_access": 1.0, "day": "2026-11-21"}
    flushed = log.run("usage.flush", {"deltas": {"key:k1": delta, "key:ghost": delta}})
    assert flushed["ok"] and set(log.state.usage) == {"key:k1"}  # no record for a ghost
    model = {"name": "m", "tenant": "t1", "selector": {"model_id": "x"}}
    assert log.run("model.put", {"model": model, "create": True})["ok"]
    assert log.run("usage.flush", {"deltas": {"model:t1/m": delta, "tenant:t1": delta}})["ok"]
    assert log.run("model.delete", {"ref": "t1/m"})["ok"]
    assert "model:t1/m" not in log.state.usage and "tenant:t1" in log.state.usage
