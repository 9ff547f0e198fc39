"""Keys bound to their scope in the state machine: minting, cascading revocation, bounds,
the authentication latch and token revocation."""

from __future__ import annotations

import pickle
from typing import Any

from mesh.commands import make
from mesh.state import (
    MAX_ACTIVE_KEYS_PER_TENANT,
    MAX_MODELS_PER_TENANT,
    MAX_RECORD_BYTES,
    REVOKED_KEYS_KEPT_PER_TENANT,
    ControlState,
)

NOW = 1_000_000.0


class Log:
    def __init__(self) -> None:
        self.state = ControlState()
        self.index = 0

    def run(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self.index += 1
        command = make(op, args, by="test")
        command["at"] = NOW
        return self.state.apply(command, self.index)


def key(key_id: str, **fields: Any) -> dict[str, Any]:
    spec = {
        "id": key_id,
        "hash": f"{abs(hash(key_id)):064d}"[-64:],
        "tenant": "t1",
        "role": "user",
        "prefix": "mg_abc",
    }
    return {"key": {**spec, **fields}}


def minted_log() -> Log:
    log = Log()
    assert log.run("tenant.create", {"name": "t1"})["ok"]
    assert log.run("tenant.create", {"name": "t2"})["ok"]
    parent = key(
        "p",
        role="minter",
        models=["m1", "m2"],
        limits={"requests_per_minute": 10},
        expires_at=NOW + 3600,
    )
    assert log.run("key.create", parent)["ok"]
    return log


def test_a_minted_key_may_be_narrower_than_its_parent() -> None:
    log = minted_log()
    child = key(
        "c", parent="p", models=["m1"], limits={"requests_per_minute": 5}, expires_at=NOW + 60
    )
    assert log.run("key.create", child)["ok"]
    assert log.state.api_keys["c"]["parent"] == "p"


def test_a_minted_key_may_not_be_wider_than_its_parent() -> None:
    log = minted_log()
    base = {"models": ["m1"], "limits": {"requests_per_minute": 5}, "expires_at": NOW + 60}
    wider = {
        "models": {**base, "models": ["m1", "m3"]},
        "all models": {**base, "models": None},
        "higher limit": {**base, "limits": {"requests_per_minute": 11}},
        "no limit": {**base, "limits": {}},
        "later expiry": {**base, "expires_at": NOW + 7200},
        "no expiry": {**base, "expires_at": None},
        "other tenant": {**base, "tenant": "t2"},
        "admin role": {**base, "role": "admin", "tenant": None},
    }
    for why, fields in wider.items():
        outcome = log.run("key.create", key(f"c-{why}", parent="p", **fields))
        assert outcome["error"] == "forbidden", why
    assert set(log.state.api_keys) == {"p"}


def test_only_active_unexpired_minters_mint() -> None:
    log = minted_log()
    assert log.run("key.create", key("u", models=["m1"]))["ok"]  # a plain user key
    assert log.run("key.create", key("c", parent="u", models=["m1"]))["error"] == "forbidden"
    assert log.run("key.create", key("c", parent="nobody"))["error"] == "forbidden"
    assert log.run("key.create", key("old", role="minter", expires_at=NOW - 1))["ok"]
    assert log.run("key.create", key("c", parent="old", expires_at=NOW - 2))["error"] == "forbidden"


def test_revoking_a_key_revokes_everything_minted_from_it() -> None:
    log = minted_log()
    grant = {"models": ["m1"], "limits": {"requests_per_minute": 5}, "expires_at": NOW + 60}
    assert log.run("key.create", key("c", parent="p", role="minter", **grant))["ok"]
    assert log.run("key.create", key("g", parent="c", **grant))["ok"]
    assert log.run("key.create", key("other", **grant))["ok"]
    outcome = log.run("key.revoke", {"id": "p"})
    assert outcome["ok"] and sorted(outcome["value"]["revoked"]) == ["c", "g", "p"]
    statuses = {k: v["status"] for k, v in log.state.api_keys.items()}
    assert statuses == {"p": "revoked", "c": "revoked", "g": "revoked", "other": "active"}
    assert set(log.state.key_hashes.values()) == {"other"}


def test_active_keys_per_tenant_are_bounded() -> None:
    log = minted_log()
    for i in range(MAX_ACTIVE_KEYS_PER_TENANT - 1):
        assert log.run("key.create", key(f"k{i}"))["ok"]
    refused = log.run("key.create", key("one-too-many"))
    assert refused["error"] == "limit_reached" and refused["limit"] == MAX_ACTIVE_KEYS_PER_TENANT
    assert log.run("key.create", key("elsewhere", tenant="t2"))["ok"]


def test_revoked_records_are_bounded() -> None:
    log = minted_log()
    for i in range(REVOKED_KEYS_KEPT_PER_TENANT + 20):
        assert log.run("key.create", key(f"k{i}"))["ok"]
        assert log.run("key.revoke", {"id": f"k{i}"})["ok"]
    revoked = [k for k in log.state.api_keys.values() if k["status"] == "revoked"]
    assert len(revoked) == REVOKED_KEYS_KEPT_PER_TENANT
    assert f"k{REVOKED_KEYS_KEPT_PER_TENANT + 19}" in log.state.api_keys  # newest kept
    assert "k0" not in log.state.api_keys  # oldest forgotten


def test_models_per_tenant_and_record_sizes_are_bounded() -> None:
    log = minted_log()
    for i in range(MAX_MODELS_PER_TENANT):
        model = {"name": f"m{i}", "tenant": "t1", "selector": {"model_id": "x"}}
        assert log.run("model.put", {"model": model, "create": True})["ok"]
    extra = {"name": "extra", "tenant": "t1", "selector": {"model_id": "x"}}
    assert log.run("model.put", {"model": extra, "create": True})["error"] == "limit_reached"
    big = log.run("config.set", {"key": "k", "value": "x" * MAX_RECORD_BYTES})
    assert big["error"] == "too_large" and "k" not in log.state.config
    nested = log.run("config.set", {"key": "k", "value": [["y" * 1000] * 40] * 2})
    assert nested["error"] == "too_large"
    assert log.run("config.set", {"key": "k", "value": "x" * 1000})["ok"]


def test_authentication_once_required_stays_required() -> None:
    log = minted_log()
    assert log.state.auth_required  # the first key turned it on
    assert log.run("key.revoke", {"id": "p"})["ok"]
    assert log.state.auth_required and not log.state.key_hashes
    fresh = Log()
    assert not fresh.state.auth_required
    assert fresh.run("auth.require", {})["ok"] and fresh.state.auth_required


def test_token_revocation_versions_are_log_indexes() -> None:
    log = Log()
    outcome = log.run("token.revoke", {"subject": "admin"})
    assert outcome["ok"] and log.state.token_versions == {"admin": log.index}
    assert log.run("token.revoke", {"subject": ""})["error"] == "invalid"


def test_a_snapshot_from_before_these_fields_loads() -> None:
    state = ControlState()
    del state.auth_required, state.token_versions  # as pickled by an older release
    loaded = pickle.loads(pickle.dumps(state))
    assert loaded.auth_required is False and loaded.token_versions == {}
