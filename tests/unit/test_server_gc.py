"""A server process collects young objects less often than Python's default."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest

from node import cli


def test_servers_raise_only_the_young_generation_threshold() -> None:
    before = gc.get_threshold()
    try:
        cli._collect_young_objects_less_often()
        assert gc.get_threshold() == (cli.YOUNG_COLLECTION_THRESHOLD, *before[1:])
        assert before[0] < cli.YOUNG_COLLECTION_THRESHOLD
    finally:
        gc.set_threshold(*before)


def test_a_server_is_imported_with_the_collector_off_and_it_is_on_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, bool] = {}

    def import_module(name: str) -> SimpleNamespace:
        seen[name] = gc.isenabled()
        return SimpleNamespace(add_arguments=lambda parser: None, run=lambda args: 0)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)
    assert gc.isenabled()
    cli.parser_for(["serve"])
    assert gc.isenabled()
    cli.parser_for(["hash-password"])  # not a server: its import is left alone
    assert seen == {"node.serve": False, "node.identity.passwords": True}
    assert gc.isenabled()
