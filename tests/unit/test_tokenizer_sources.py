"""Reading a tokenizer's source on the node that takes the registration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from huggingface_hub import constants

from node.blobs.store import BlobStore
from node.tokenizers.sources import Read, SourceError, kind_of, read_source, shown_url
from tests.tokenizer_files import build_tokenizer_dir


def read(source: str, store: BlobStore) -> Read:
    return asyncio.run(read_source(source, store, None, 1.0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("/models/llama", "path"),
        ("./tok", "path"),
        ("~/tok/tokenizer.json", "path"),
        ("https://host/x/tokenizer.json", "url"),
        ("meta-llama/Llama-3.1-8B-Instruct", "hub"),
        ("gpt2", "hub"),
    ],
)
def test_the_three_forms(source: str, kind: str) -> None:
    assert kind_of(source) == kind


@pytest.mark.parametrize(
    "source",
    ["ftp://host/t.json", "http:///nohost", "http://a..b/t.json", "a/b/c", "a/../b", "x y"],
)
def test_anything_else_is_refused_at_once(source: str) -> None:
    with pytest.raises(SourceError):
        kind_of(source)


def test_a_path_that_is_not_there_is_refused_at_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "data", 1000)
    with pytest.raises(SourceError, match="does not exist"):
        read(str(tmp_path / "absent"), store)
    with pytest.raises(SourceError, match=r"holds no tokenizer\.json"):
        read(str(tmp_path), store)
    with pytest.raises(SourceError, match="names no home directory"):
        read("~no-such-user-here/tokenizer.json", store)


def test_a_directory_gives_its_tokenizer_files(tmp_path: Path) -> None:
    source = build_tokenizer_dir(tmp_path / "src")
    (source / "chat_template.jinja").write_text("{{ messages }}")
    (source / "notes.txt").write_text("not a tokenizer file")
    store = BlobStore(tmp_path / "data", 10_000_000)
    got = read(str(source), store)
    assert set(got.files) == {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    assert store.digests() == {f["sha256"] for f in got.files.values()}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"root:x:0:0:root:/root:/bin/bash\n", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"version": "1.0"}', "not a tokenizers file"),
        (b'{"model": "' + b"x" * 200 + b'"}', "larger than the limit of 100 bytes"),
    ],
)
def test_only_tokenizer_files_enter_the_store(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "tokenizer.json").write_bytes(content)
    store = BlobStore(tmp_path / "data", 100)
    with pytest.raises(SourceError, match=problem):
        read(str(tmp_path / "tokenizer.json"), store)
    assert store.digests() == set()


def test_a_hub_id_is_read_from_the_local_cache_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    build_tokenizer_dir(repo / "snapshots" / "0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    store = BlobStore(tmp_path / "data", 10_000_000)
    got = read("acme/tiny", store)
    assert got.failure is None and got.source == "acme/tiny"
    assert set(got.files) == {"tokenizer.json", "tokenizer_config.json"}
    absent = read("acme/absent", store)
    assert absent.files == {}
    assert absent.failure and "not in the local Hugging Face cache" in absent.failure
    assert str(cache) in absent.failure
    for bad in ("acme/tiny.", "acme/tiny.git"):  # the hub's own rules, at once
        with pytest.raises(SourceError, match="not a Hugging Face model id"):
            read(bad, store)


def test_a_url_is_shown_without_userinfo_query_or_fragment() -> None:
    url = "https://user:pw@host.example:8443/t/tokenizer.json?X-Amz-Signature=abc#frag"
    assert shown_url(url) == "https://host.example:8443/t/tokenizer.json"
