"""Which tokenizer serves a request (node/text/resolve.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from node.text import resolve
from node.text.resolve import TokenizerNotFound, TokenizerResolver, TokenizerUnavailable
from node.text.tokenizer import TextTokenizer, load_tokenizer
from tests.tokenizer_files import build_tokenizer_dir

HELLO = [{"role": "user", "content": "hi"}]


class Catalog:
    def __init__(self, entries: dict[str, TextTokenizer]) -> None:
        self.entries = entries

    def find(self, name_or_id: str) -> TextTokenizer | None:
        return self.entries.get(name_or_id)

    def names(self) -> list[str]:
        return sorted(self.entries)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return load_tokenizer(build_tokenizer_dir(tmp_path_factory.mktemp("tok"), "qwen25"))


def resolver(records: dict[str, list[dict[str, Any]]], catalog: Catalog | None = None):
    return TokenizerResolver(lambda model: records.get(model, []), catalog)


def test_a_registered_name(registered: TextTokenizer) -> None:
    found = resolver({}, Catalog({"qwen": registered}))
    assert found.by_name("qwen") is registered
    with pytest.raises(TokenizerNotFound, match=r"'nope' \(registered: qwen\)") as info:
        found.by_name("nope")
    assert info.value.code == "TOKENIZER_NOT_FOUND"
    with pytest.raises(TokenizerNotFound, match="none is registered"):
        resolver({}).by_name("nope")


def test_worker_path_names_a_registered_tokenizer_and_its_template_wins(
    registered: TextTokenizer,
) -> None:
    records = {"m": [{"tokenizer_path": "qwen", "chat_template": "T{{ messages | length }}"}]}
    found = resolver(records, Catalog({"qwen": registered})).for_model("m")
    assert found.apply_chat_template(HELLO) == "T1"
    assert registered.apply_chat_template(HELLO).startswith("<|im_start|>")  # untouched
    assert found.encode("hi") == registered.encode("hi")


def test_worker_path_loads_local_files_once_per_version(tmp_path: Path) -> None:
    directory = build_tokenizer_dir(tmp_path, "qwen25")
    records = {"m": [{"id": "a"}, {"tokenizer_path": str(directory)}]}
    found = resolver(records)
    first = found.for_model("m")
    assert found.for_model("m") is first  # cached
    config = directory / "tokenizer_config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "model_max_length": 99}))
    os.utime(config, ns=(1, 1))  # a different version even within the clock's resolution
    assert found.for_model("m").max_model_len == 99


def test_model_named_like_a_registered_tokenizer(registered: TextTokenizer) -> None:
    catalog = Catalog({"m": registered})
    assert resolver({}, catalog).for_model("m") is registered
    worker_template = {"m": [{"chat_template": "W"}]}
    assert resolver(worker_template, catalog).for_model("m").apply_chat_template(HELLO) == "W"


def test_nothing_serves_the_model() -> None:
    with pytest.raises(TokenizerNotFound, match="no ready worker serves model 'm'") as info:
        resolver({}).for_model("m")
    assert info.value.code == "MODEL_NOT_FOUND"
    with pytest.raises(TokenizerNotFound, match="name no tokenizer_path") as info:
        resolver({"m": [{"id": "a"}]}).for_model("m")
    assert info.value.code == "TOKENIZER_NOT_FOUND"


def test_bad_paths_and_templates_are_unavailable(
    tmp_path: Path, registered: TextTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    loads: list[Path] = []

    def counted(path: Path, chat_template: str | None = None) -> TextTokenizer:
        loads.append(path)
        return load_tokenizer(path, chat_template)

    monkeypatch.setattr(resolve, "load_tokenizer", counted)
    bad = resolver({"m": [{"tokenizer_path": str(tmp_path)}], "gone": [{"tokenizer_path": "/x"}]})
    for _ in range(2):
        with pytest.raises(TokenizerUnavailable, match=r"not a valid tokenizer\.json"):
            bad.for_model("m")
    assert len(loads) == 1  # a broken file is not parsed again
    with pytest.raises(TokenizerUnavailable, match=r"no tokenizer file at /x"):
        bad.for_model("gone")
    broken = {"m": [{"tokenizer_path": "q", "chat_template": "{% if %}"}]}
    with pytest.raises(TokenizerUnavailable, match=r"chat_template: .*does not compile"):
        resolver(broken, Catalog({"q": registered})).for_model("m")


def test_the_cache_is_bounded(registered: TextTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve, "CACHE_SIZE", 3)
    records: dict[str, list[dict[str, Any]]] = {
        str(i): [{"tokenizer_path": "q", "chat_template": f"{i}"}] for i in range(5)
    }
    found = resolver(records, Catalog({"q": registered}))
    first = found.for_model("0")
    for model in records:
        found.for_model(model)
    assert len(found._cache) == 3
    assert found.for_model("0") is not first  # evicted, rebuilt
