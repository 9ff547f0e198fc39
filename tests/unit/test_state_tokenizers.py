"""The replicated tokenizer registry: `tokenizer.add` and `tokenizer.remove`."""

from __future__ import annotations

from typing import Any

import pytest

from mesh import state
from tests.unit.test_state import Log, assert_failed

TK1 = "00000000-0000-4000-8000-000000000001"
TK2 = "00000000-0000-4000-8000-000000000002"
FILES = {
    "tokenizer.json": {"sha256": "a" * 64, "size": 1200},
    "tokenizer_config.json": {"sha256": "b" * 64, "size": 300},
}


def _add(log: Log, tokenizer_id: str = TK1, name: str = "llama", **fields: Any) -> Any:
    spec = {"id": tokenizer_id, "name": name, "source": "/models/llama", "files": FILES}
    return log.run("tokenizer.add", {"tokenizer": {**spec, **fields}})


def test_add_keeps_digests_and_who_and_when() -> None:
    log = Log()
    outcome = _add(log, chat_template="{{ messages }}")
    assert outcome == {"ok": True, "value": {"tokenizer_id": TK1, "version": 1}}
    record = log.state.tokenizers[TK1]
    assert record["name"] == "llama"
    assert record["source"] == "/models/llama"
    assert record["files"] == FILES
    assert record["chat_template"] == "{{ messages }}"
    assert record["created_by"] == "t" and record["version"] == 1
    assert log.state.counts()["tokenizers"] == 1


def test_a_taken_name_or_id_conflicts_and_changes_nothing() -> None:
    log = Log()
    _add(log)
    before = dict(log.state.tokenizers)
    same_name = _add(log, tokenizer_id=TK2)
    assert_failed(same_name, "conflict")
    assert same_name["tokenizer_id"] == TK1
    assert_failed(_add(log, name="other"), "conflict")
    assert log.state.tokenizers == before


def test_unknown_fields_of_the_spec_are_not_kept() -> None:
    log = Log()
    files = {"tokenizer.json": {"sha256": "c" * 64, "size": 5, "bytes": "not kept"}}
    _add(log, files=files, extra="ignored")
    record = log.state.tokenizers[TK1]
    assert "extra" not in record
    assert record["files"] == {"tokenizer.json": {"sha256": "c" * 64, "size": 5}}


def test_remove_frees_the_name() -> None:
    log = Log()
    _add(log)
    assert log.run("tokenizer.remove", {"id": TK1})["ok"]
    assert log.state.tokenizers == {}
    assert_failed(log.run("tokenizer.remove", {"id": TK1}), "not_found")
    assert _add(log, tokenizer_id=TK2)["ok"]


def test_a_source_that_gave_nothing_is_recorded_failed_without_files() -> None:
    log = Log()
    assert _add(log, files={}, failure="not in the cache")["ok"]
    record = log.state.tokenizers[TK1]
    assert record["files"] == {} and record["failure"] == "not in the cache"
    refused = _add(log, tokenizer_id=TK2, name="n2", failure="x")  # files and a failure
    assert_failed(refused, "invalid")
    assert "a failed tokenizer has no files" in refused["message"]


def test_the_mesh_holds_a_bounded_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "MAX_TOKENIZERS", 2)
    log = Log()
    assert _add(log, TK1, "a")["ok"] and _add(log, TK2, "b")["ok"]
    refused = _add(log, TK2.replace("2", "3"), "c")
    assert_failed(refused, "limit_reached")
    assert refused["limit"] == 2 and set(log.state.tokenizers) == {TK1, TK2}
