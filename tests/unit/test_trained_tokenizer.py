"""The built-in tokenizer (node/text/trained.py): deterministic, built once, reused."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from node.text.tokenizer import load_tokenizer
from node.text.trained import default_tokenizer_dir, train_tokenizer


def test_training_is_deterministic() -> None:
    assert train_tokenizer().to_str() == train_tokenizer().to_str()


def test_the_default_directory_is_built_once_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    first = default_tokenizer_dir()
    assert first.parent == tmp_path and first.name.startswith("meshgate-tokenizer-")
    stamp = (first / "tokenizer.json").stat().st_mtime_ns
    assert default_tokenizer_dir() == first  # reused, not rebuilt
    assert (first / "tokenizer.json").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no build left behind
    tokenizer = load_tokenizer(first)
    ids = tokenizer.encode("Hello, world! 🙂", add_special_tokens=False)
    assert tokenizer.decode(ids, False) == "Hello, world! 🙂"
    assert tokenizer.chat_template is not None
