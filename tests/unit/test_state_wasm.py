"""The replicated WASM module registry: `wasm.add`, `wasm.update` and `wasm.remove`."""

from __future__ import annotations

import uuid
from typing import Any

from mesh import state
from tests.unit.test_state import Log, assert_failed

DIGEST = "d" * 64


def _add(log: Log, module_id: str = "m1", name: str = "auth", **fields: Any) -> Any:
    spec = {"id": module_id, "name": name, "sha256": DIGEST, "size": 900}
    spec["attach_points"] = ["OnRequest"]
    return log.run("wasm.add", {"module": {**spec, **fields}})


def test_add_keeps_the_digest_defaults_and_who() -> None:
    log = Log()
    assert _add(log) == {"ok": True, "value": {"module_id": "m1", "version": 1}}
    record = log.state.wasm_modules["m1"]
    assert record["sha256"] == DIGEST and record["size"] == 900
    assert record["attach_points"] == ["OnRequest"]
    assert record["enabled"] is True and record["on_error"] == "fail"
    assert record["limits"] == state.WASM_DEFAULT_LIMITS
    assert record["order"] == 0 and record["created_by"] == "t"
    assert log.state.counts()["wasm_modules"] == 1


def test_a_batch_is_added_whole_in_its_order_or_not_at_all() -> None:
    log = Log()
    _add(log)

    def spec(module_id: str, name: str) -> dict[str, Any]:
        return {
            "id": module_id,
            "name": name,
            "sha256": DIGEST,
            "size": 1,
            "attach_points": ["OnRequest"],
        }

    added = log.run("wasm.add", {"modules": [spec("m2", "a"), spec("m3", "b")]})
    assert added == {"ok": True, "value": {"module_ids": ["m2", "m3"], "version": 2}}
    assert [log.state.wasm_modules[m]["order"] for m in ("m2", "m3")] == [1, 2]
    before = dict(log.state.wasm_modules)
    # One taken name (the last) refuses all three; two of the batch with one name too.
    taken = log.run("wasm.add", {"modules": [spec("m4", "c"), spec("m5", "d"), spec("m6", "a")]})
    assert_failed(taken, "conflict")
    assert taken["module_id"] == "m2"
    assert_failed(log.run("wasm.add", {"modules": [spec("m4", "e"), spec("m5", "e")]}), "conflict")
    assert log.state.wasm_modules == before


def test_modules_without_an_order_run_after_those_before_them() -> None:
    log = Log()
    _add(log, order=7)
    _add(log, "m2", "headers")
    assert log.state.wasm_modules["m2"]["order"] == 8


def test_a_taken_name_or_id_conflicts_and_changes_nothing() -> None:
    log = Log()
    _add(log)
    before = dict(log.state.wasm_modules)
    same_name = _add(log, "m2")
    assert_failed(same_name, "conflict")
    assert same_name["module_id"] == "m1"
    assert_failed(_add(log, name="other"), "conflict")
    assert log.state.wasm_modules == before


def test_the_mesh_holds_a_bounded_number(monkeypatch: Any) -> None:
    monkeypatch.setattr(state, "MAX_WASM_MODULES", 1)
    log = Log()
    _add(log)
    assert_failed(_add(log, "m2", "other"), "limit_reached")
    assert list(log.state.wasm_modules) == ["m1"]


def test_update_changes_only_what_it_names_and_merges_limits() -> None:
    log = Log()
    _add(log, limits={"timeout_ms": 20})
    changes = {"enabled": False, "on_error": "continue", "limits": {"memory_bytes": 1 << 20}}
    assert log.run("wasm.update", {"id": "m1", "changes": changes})["ok"]
    record = log.state.wasm_modules["m1"]
    assert record["enabled"] is False and record["on_error"] == "continue"
    assert record["limits"] == {"timeout_ms": 20, "memory_bytes": 1 << 20}
    assert record["name"] == "auth" and record["version"] == 2


def test_update_and_remove_of_an_unknown_module_are_not_found() -> None:
    log = Log()
    assert_failed(log.run("wasm.update", {"id": "x", "changes": {"order": 1}}), "not_found")
    assert_failed(log.run("wasm.remove", {"id": "x"}), "not_found")


def test_remove_frees_the_name_and_its_digest() -> None:
    log = Log()
    _add(log)
    assert DIGEST in log.state.digests_in_use()
    assert log.run("wasm.remove", {"id": "m1"})["ok"]
    assert log.state.wasm_modules == {} and DIGEST not in log.state.digests_in_use()
    assert _add(log, "m2")["ok"]


def test_a_digest_a_tokenizer_shares_stays_in_use() -> None:
    log = Log()
    files = {"tokenizer.json": {"sha256": DIGEST, "size": 900}}
    tokenizer = {"id": str(uuid.uuid4()), "name": "t", "source": "s", "files": files}
    assert log.run("tokenizer.add", {"tokenizer": tokenizer})["ok"]
    _add(log)
    log.run("wasm.remove", {"id": "m1"})
    assert log.state.digests_in_use() == {DIGEST}
