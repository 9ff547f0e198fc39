"""Unit tests of what `GET /ws` clients may see (`node/live/visibility.py`) and of the
fan-out's queues, overflow and credential re-checks (`node/live/feed.py`), with fake clients."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from mesh.commands import ALL_OPS
from mesh.events import Applied, AppliedStream
from node.auth import ANONYMOUS, Principal
from node.live.feed import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN, Client, Feed
from node.live.visibility import (
    Viewer,
    change_message,
    concerned_tenants,
    is_secret_field,
    may_see,
    redact,
    scrub,
)

SECRETS = (
    "sk-worker-SECRET-1",
    "a" * 64,  # a key hash
    "b" * 64,  # a rotated key hash
    "c" * 64,  # a publication key hash
    "hunter2-SECRET",
    "tok-SECRET-3",
    "s3cr3t-SECRET-4",
    "userinfo-SECRET-5",
    "sk-new-SECRET-6",
)
KEYS = {"key-a": "acme", "key-b": "bolt"}  # key id -> tenant, as the replicated state says

ADMIN = Viewer("a", admin=True)
ACME = Viewer("u-acme", admin=False, tenant="acme")
BOLT = Viewer("u-bolt", admin=False, tenant="bolt")
NO_TENANT = Viewer("api-key", admin=False)


def key_tenant(key_id: str) -> str | None:
    return KEYS.get(key_id)


def cmd(op: str, args: dict[str, Any], by: str = "node-1/a") -> dict[str, Any]:
    return {"op": op, "rid": "r", "at": 1700000000.5, "by": by, "args": args}


def applied(op: str, args: dict[str, Any], ok: bool = True, index: int = 7) -> Applied:
    outcome = (
        {"ok": True, "value": {"version": index}}
        if ok
        else {"ok": False, "error": "conflict", "message": "no"}
    )
    return Applied(index, cmd(op, args), outcome)


# One ok command per op, each carrying secrets where such a command can; tenant-scoped
# ones belong to tenant acme.
SAMPLES: dict[str, dict[str, Any]] = {
    "worker.add": {
        "worker": {
            "id": "w1",
            "url": "http://admin:userinfo-SECRET-5@10.0.0.5:8000",
            "api_key": "sk-worker-SECRET-1",
            "labels": {"zone": "a"},
        }
    },
    "worker.update": {"id": "w1", "changes": {"api_key": "sk-new-SECRET-6", "priority": 3}},
    "worker.set_status": {"id": "w1", "status": "ready", "job_status": {"state": "done"}},
    "worker.remove": {"id": "w1"},
    "policy.set": {"model": "m", "policy": "round_robin", "params": {}},
    "policy.delete": {"model": "m"},
    "config.set": {
        "key": "upstream",
        "value": {"password": "hunter2-SECRET", "nested": [{"token": "tok-SECRET-3"}], "n": 1},
    },
    "config.delete": {"key": "upstream"},
    "member.upsert": {"member": {"name": "node-2", "boot_id": "b", "http_url": "http://x"}},
    "member.set_draining": {"name": "node-2", "draining": True},
    "member.remove": {"name": "node-2"},
    "ratelimit.set": {"scope": "*", "requests_per_second": 5, "burst": 5},
    "ratelimit.delete": {"scope": "*"},
    "shutdown.plan": {"id": "p", "targets": {"node-2": "b"}, "client_secret": "s3cr3t-SECRET-4"},
    "tenant.create": {"name": "acme", "description": "Acme"},
    "tenant.delete": {"name": "acme"},
    "key.create": {
        "key": {
            "id": "key-a",
            "tenant": "acme",
            "role": "user",
            "prefix": "mg_ab",
            "hash": "a" * 64,
        }
    },
    "key.rotate": {"id": "key-a", "prefix": "mg_cd", "hash": "b" * 64},
    "key.revoke": {"id": "key-a"},
    "auth.require": {},
    "token.revoke": {"subject": "admin"},
    "breaker.reset": {"worker_id": None},
    "model.put": {"model": {"name": "chat", "tenant": "acme", "selector": {"model_id": "x"}}},
    "model.delete": {"ref": "acme/chat"},
    "publish.put": {
        "ref": "acme/chat",
        "publication": {"externalPath": "/p/chat"},
        "key": {"id": "key-p", "tenant": "acme", "prefix": "mg_pp", "hash": "c" * 64},
        "create": True,
    },
    "publish.delete": {"ref": "acme/chat"},
    "usage.flush": {"deltas": {"key-a": {"requests": 1, "tokens": 5}}},
    "tokenizer.add": {
        "tokenizer": {
            "id": "00000000-0000-4000-8000-000000000001",
            "name": "llama",
            "source": "https://hub.example/tokenizer.json",
            "files": {"tokenizer.json": {"sha256": "d" * 64, "size": 9}},
        }
    },
    "tokenizer.remove": {"id": "00000000-0000-4000-8000-000000000001"},
    "wasm.add": {
        "module": {
            "id": "m",
            "name": "auth",
            "sha256": "d" * 64,
            "size": 9,
            "attach_points": ["OnRequest"],
        }
    },
    "wasm.update": {"id": "m", "changes": {"enabled": False}},
    "wasm.remove": {"id": "m"},
    "read.barrier": {},
}
USER_VISIBLE = {
    "tenant.create",
    "tenant.delete",
    "key.create",
    "key.rotate",
    "key.revoke",
    "model.put",
    "model.delete",
    "publish.put",
    "publish.delete",
}


def test_every_op_has_a_sample() -> None:
    assert set(SAMPLES) == set(ALL_OPS)


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_visibility_table(op: str) -> None:
    change = applied(op, SAMPLES[op])
    assert may_see(ADMIN, change, key_tenant)
    assert may_see(ACME, change, key_tenant) is (op in USER_VISIBLE)
    assert not may_see(BOLT, change, key_tenant)  # nothing here concerns tenant bolt
    assert not may_see(NO_TENANT, change, key_tenant)


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_refusals_are_for_admins_only(op: str) -> None:
    refused = applied(op, SAMPLES[op], ok=False)
    assert may_see(ADMIN, refused, key_tenant)
    assert not may_see(ACME, refused, key_tenant)
    assert not may_see(BOLT, refused, key_tenant)


def test_a_reset_goes_to_everyone() -> None:
    reset = Applied(12, None, None)
    for viewer in (ADMIN, ACME, BOLT, NO_TENANT):
        assert may_see(viewer, reset, key_tenant)
    assert change_message(reset) == {"type": "reset", "index": 12}


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("key.create", {"key": {"id": "key-b", "tenant": "bolt", "hash": "d" * 64}}),
        ("key.rotate", {"id": "key-b", "prefix": "mg_x", "hash": "e" * 64}),
        ("key.revoke", {"id": "key-b"}),
        ("tenant.create", {"name": "bolt"}),
        ("tenant.delete", {"name": "bolt"}),
        ("model.put", {"model": {"name": "m", "tenant": "bolt"}}),
        ("model.delete", {"ref": "bolt/m"}),
        ("publish.put", {"ref": "bolt/m", "publication": {}, "key": {"tenant": "bolt"}}),
        ("publish.delete", {"ref": "bolt/m"}),
        ("usage.flush", {"tenant": "bolt", "deltas": {}}),
    ],
)
def test_a_tenant_never_sees_another_tenants_changes(op: str, args: dict[str, Any]) -> None:
    change = applied(op, args)
    assert not may_see(ACME, change, key_tenant)
    assert may_see(BOLT, change, key_tenant)
    assert may_see(ADMIN, change, key_tenant)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("key.revoke", {"id": "key-unknown"}),  # no record: whose is it? nobody's
        ("key.rotate", {}),
        ("model.put", {"model": {"name": "m", "tenant": "acme"}, "ref": "bolt/m"}),  # two tenants
        ("publish.put", {"ref": "acme/m", "key": {"tenant": "bolt"}}),
        ("model.delete", {"ref": "no-slash"}),
        ("model.delete", {"ref": "/m"}),
        ("usage.flush", {"deltas": {"key-a": {"requests": 1}}}),  # names no tenant
        ("tenant.create", {"name": {"not": "a string"}}),
        ("tenant.create", {}),
        ("key.create", {"key": {"tenant": ["acme"]}}),
        ("future.op", {"tenant": "acme"}),  # unknown families are denied by default
        ("config.set", {"key": "k", "tenant": "acme"}),  # hidden families stay hidden
        ("worker.add", {"worker": {"tenant": "acme"}}),
    ],
)
def test_unclear_or_hidden_changes_are_shown_to_no_user(op: str, args: dict[str, Any]) -> None:
    assert not may_see(ACME, applied(op, args), key_tenant)
    assert not may_see(BOLT, applied(op, args), key_tenant)


def test_malformed_entries_are_admin_only_and_never_crash() -> None:
    for entry in (
        Applied(3, {"rid": "r"}, {"ok": False, "error": "invalid", "message": "bad"}),
        Applied(4, {"op": 5, "args": "x"}, None),
        Applied(5, "not a mapping", {"ok": True, "value": None}),  # type: ignore[arg-type]
        Applied(6, cmd("key.revoke", {"id": "key-a"}), {"ok": "yes"}),
    ):
        assert may_see(ADMIN, entry, key_tenant)
        assert not may_see(ACME, entry, key_tenant)
        message = change_message(entry)
        assert message["type"] == "change" and message["index"] == entry.index
        orjson.dumps(message)


def test_concerned_tenants_reads_args_and_key_records() -> None:
    assert concerned_tenants("key", {"id": "key-a"}, key_tenant) == {"acme"}
    assert concerned_tenants("tenant", {"name": "acme", "tenant": "bolt"}, key_tenant) == {"acme"}
    assert concerned_tenants("model", {"ref": "acme/m"}, key_tenant) == {"acme"}
    assert concerned_tenants("usage", {"deltas": {}}, key_tenant) == set()


def test_viewer_of_principals() -> None:
    assert Viewer.of(ANONYMOUS) == Viewer("anonymous", admin=True)
    admin = Principal("a", "ops", "admin", "control_plane_key")
    assert Viewer.of(admin) == Viewer("a", admin=True)
    user = Principal("k1", "bob", "user", "managed_key", "acme")
    assert Viewer.of(user) == Viewer("k1", admin=False, tenant="acme")

    class Old:  # a Principal from before tenants existed
        id, name, role, kind = "k", "k", "user", "api_key"

    assert Viewer.of(Old()) == Viewer("k", admin=False, tenant=None)


# -- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(SAMPLES))
@pytest.mark.parametrize("ok", [True, False])
def test_no_message_ever_contains_a_secret(op: str, ok: bool) -> None:
    change = applied(op, SAMPLES[op], ok=ok)
    if not ok:  # refusals may carry details; they are walked the same way
        assert change.outcome is not None
        change.outcome.update({"api_key": "sk-worker-SECRET-1", "url": SAMPLES_URL})
    raw = orjson.dumps(change_message(change))
    for secret in SECRETS:
        assert secret.encode() not in raw, (op, secret)


SAMPLES_URL = "http://admin:userinfo-SECRET-5@10.0.0.5:8000"


def test_worker_add_message_shape() -> None:
    message = change_message(applied("worker.add", SAMPLES["worker.add"], index=42))
    assert message == {
        "type": "change",
        "index": 42,
        "op": "worker.add",
        "at": 1700000000.5,
        "by": "node-1/a",
        "ok": True,
        "object": {
            "worker": {"id": "w1", "url": "http://***@10.0.0.5:8000", "labels": {"zone": "a"}}
        },
        "outcome": {"version": 42},
        "redacted": ["worker.api_key"],
    }


def test_key_records_keep_their_prefix_and_lose_their_hash() -> None:
    message = change_message(applied("key.create", SAMPLES["key.create"]))
    assert message["object"] == {
        "key": {"id": "key-a", "tenant": "acme", "role": "user", "prefix": "mg_ab"}
    }
    assert message["redacted"] == ["key.hash"]
    rotated = change_message(applied("key.rotate", SAMPLES["key.rotate"]))
    assert rotated["object"] == {"id": "key-a", "prefix": "mg_cd"}
    published = change_message(applied("publish.put", SAMPLES["publish.put"]))
    assert published["object"]["key"] == {"id": "key-p", "tenant": "acme", "prefix": "mg_pp"}


def test_config_key_names_stay_but_secret_values_go() -> None:
    message = change_message(applied("config.set", SAMPLES["config.set"]))
    assert message["object"] == {"key": "upstream", "value": {"nested": [{}], "n": 1}}
    assert sorted(message["redacted"]) == ["value.nested[0].token", "value.password"]
    outcome = change_message(
        Applied(9, cmd("config.set", {"key": "k"}), {"ok": True, "value": {"key": "k"}})
    )
    assert outcome["outcome"] == {"key": "k"}


def test_refusal_outcome_shape() -> None:
    refused = Applied(
        9,
        cmd("config.set", {"key": "k", "value": 1, "expected_version": 3}),
        {"ok": False, "error": "version_mismatch", "message": "expected 3", "current_version": 5},
    )
    message = change_message(refused)
    assert message["ok"] is False
    assert message["outcome"] == {
        "error": "version_mismatch",
        "message": "expected 3",
        "current_version": 5,
    }


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("api_key", "x", True),
        ("apiKey", "x", True),
        ("API_KEY", "x", True),
        ("api_key", None, True),
        ("key", "x", True),
        ("key", {"prefix": "p"}, False),  # a key record is walked, not dropped
        ("keys", [{"prefix": "p"}], False),
        ("api_keys", ["sk-1"], True),
        ("hash", "x", True),
        ("prefix", "mg_", False),
        ("secret", "x", True),
        ("client_secret", "x", True),
        ("password", "x", True),
        ("passwordHash", "x", True),
        ("token", "x", True),
        ("access_token", "x", True),
        ("tokens", 12, False),
        ("tokens_used", 12, False),
        ("max_tokens", 5, False),
        ("has_api_key", True, False),
        ("key_id", "k1", False),
        ("tokenizer_path", "/x", False),
        ("url", "http://h", False),
        ("name", "x", False),
        (3, "x", False),
    ],
)
def test_secret_field_names(name: Any, value: Any, secret: bool) -> None:
    assert is_secret_field(name, value) is secret


def test_redact_walks_lists_and_masks_url_credentials() -> None:
    dropped: list[str] = []
    out = redact({"a": [{"token": "t"}, "redis://u:pw@h:6379/0"], "b": ("x",)}, "", dropped)
    assert out == {"a": [{}, "redis://***@h:6379/0"], "b": ["x"]}
    assert dropped == ["a[0].token"]
    assert scrub("no url here; http://host/path?q=a@b") == "no url here; http://host/path?q=a@b"
    assert scrub("https://tok@h and grpc://a:b@g:1") == "https://***@h and grpc://***@g:1"


# -- the feed, with fake clients ---------------------------------------------------------------


def decoded(client: Client) -> list[dict[str, Any]]:
    async def drain() -> list[dict[str, Any]]:
        out = []
        while client.pending:
            text = await client.next()
            assert text is not None
            out.append(orjson.loads(text))
        return out

    return asyncio.run(drain())


def make_feed(limit: int = 1000, applied_index: int = 0) -> Feed:
    return Feed(AppliedStream(), "node-1", key_tenant, limit=limit, applied_index=applied_index)


def test_feed_sends_hello_then_allowed_changes_in_order() -> None:
    feed = make_feed(applied_index=5)
    feed.start()
    admin, acme, bolt = feed.attach(ADMIN), feed.attach(ACME), feed.attach(BOLT)
    feed.on_applied(applied("config.set", {"key": "k", "value": 1}, index=6))
    feed.on_applied(applied("tenant.create", {"name": "acme"}, index=7))
    feed.on_applied(applied("key.revoke", {"id": "key-b"}, index=8))
    feed.on_applied(applied("tenant.create", {"name": "acme"}, ok=False, index=9))
    hello = {"type": "hello", "node": "node-1", "applied_index": 5}
    got = decoded(admin)
    assert got[0] == hello
    assert [m["index"] for m in got[1:]] == [6, 7, 8, 9]
    assert [m["index"] for m in decoded(acme)[1:]] == [7]
    assert [m["index"] for m in decoded(bolt)[1:]] == [8]
    assert feed.last_index == 9
    late = feed.attach(ACME)
    assert decoded(late) == [{**hello, "applied_index": 9}]
    feed.stop()
    feed.stop()  # idempotent


def test_feed_follows_the_stream() -> None:
    async def scenario() -> list[dict[str, Any]]:
        stream = AppliedStream()
        stream.bind(asyncio.get_running_loop())
        feed = Feed(stream, "node-1", key_tenant)
        feed.start()
        client = feed.attach(ADMIN)
        stream.publish(applied("config.set", {"key": "k", "value": 1}, index=1))
        stream.publish(Applied(2, None, None))
        out = [orjson.loads(await client.next() or "null") for _ in range(3)]
        feed.stop()
        return out

    hello, change, reset = asyncio.run(scenario())
    assert hello["type"] == "hello" and change["index"] == 1
    assert reset == {"type": "reset", "index": 2}


def test_overflow_closes_the_slow_client_with_1013_and_spares_the_others() -> None:
    feed = make_feed(limit=3)
    closed: list[tuple[int, str]] = []
    slow = feed.attach(ADMIN, on_close=lambda code, reason: closed.append((code, reason)))
    fast = feed.attach(ADMIN)
    for index in range(1, 6):  # hello + 5 changes > 3
        feed.on_applied(applied("config.set", {"key": "k", "value": index}, index=index))
        if index <= 2:
            decoded(fast)  # this one keeps up
        else:
            assert decoded(fast)[-1]["index"] == index
    assert len(closed) == 1
    code, reason = closed[0]
    assert code == CLOSE_TRY_AGAIN and "reconnect" in reason and len(reason.encode()) <= 123
    assert slow.closing == closed[0]
    assert slow.pending == 0  # nothing half-sent: it must resync anyway
    assert asyncio.run(slow.next()) is None
    assert not slow.offer("more")
    assert fast.closing is None


def test_a_client_waiting_for_messages_wakes_on_close() -> None:
    async def scenario() -> str | None:
        client = Client(ADMIN, 10)
        waiter = asyncio.create_task(client.next())
        await asyncio.sleep(0)
        client.close(CLOSE_GOING_AWAY, "bye")
        return await waiter

    assert asyncio.run(scenario()) is None


def test_revoked_credentials_are_closed_when_a_key_change_applies() -> None:
    feed = make_feed()
    valid = {"acme": True, "bolt": True}
    closed: dict[str, int] = {}

    def on_close(code: int, _: str) -> None:
        closed["acme"] = code

    acme = feed.attach(ACME, on_close=on_close, still_valid=lambda: valid["acme"])
    bolt = feed.attach(BOLT, still_valid=lambda: valid["bolt"])
    feed.on_applied(applied("config.set", {"key": "k"}, index=2))
    valid["acme"] = False
    feed.on_applied(applied("config.set", {"key": "k"}, index=3))  # not re-checked on this op
    assert acme.closing is None
    feed.on_applied(applied("key.revoke", {"id": "key-a"}, index=4))
    assert closed == {"acme": CLOSE_POLICY}
    assert acme.pending == 0 and bolt.closing is None


def test_a_failing_check_denies_one_client_only() -> None:
    def broken(_: str) -> str | None:
        raise RuntimeError("boom")

    feed = Feed(AppliedStream(), "node-1", broken)
    admin, acme = feed.attach(ADMIN), feed.attach(ACME)
    feed.on_applied(applied("key.revoke", {"id": "key-a"}, index=3))
    assert [m["index"] for m in decoded(admin)[1:]] == [3]
    assert decoded(acme)[1:] == []


def test_shutdown_closes_every_client_and_waits_for_them() -> None:
    async def scenario() -> list[int]:
        feed = make_feed()
        codes: list[int] = []
        clients: list[Client] = []

        def on_close(code: int, _: str) -> None:
            codes.append(code)
            asyncio.get_running_loop().call_later(0.01, feed.detach, clients[-1])

        clients.append(feed.attach(ADMIN, on_close=on_close))
        await feed.shutdown(timeout=5)
        assert feed.clients == 0 and feed.closed
        with pytest.raises(RuntimeError):
            feed.attach(ADMIN)
        return codes

    assert asyncio.run(scenario()) == [CLOSE_GOING_AWAY]


def test_shutdown_gives_up_on_clients_that_never_leave() -> None:
    async def scenario() -> int:
        feed = make_feed()
        feed.attach(ADMIN)
        await feed.shutdown(timeout=0.05)
        return feed.clients

    assert asyncio.run(scenario()) == 1
