"""Unit tests of the echo worker's deterministic output, fault settings and flags."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from node.cli import main as meshgate_main
from node.echo import text
from node.echo.faults import FaultInjector, FaultSettings


def test_vocabulary_has_256_distinct_words() -> None:
    assert len(text.VOCAB) == 256
    assert len(set(text.VOCAB)) == 256
    assert all(" " not in word for word in text.VOCAB)


def test_same_prompt_gives_same_text() -> None:
    assert text.generate_text("tell me a story", 20) == text.generate_text("tell me a story", 20)


def test_different_prompts_give_different_text() -> None:
    outputs = {text.generate_text(f"prompt number {i}", 12) for i in range(50)}
    assert len(outputs) == 50


@pytest.mark.parametrize("count", [0, 1, 7, 16, 300])
def test_text_length_equals_requested_tokens(count: int) -> None:
    words = text.generate_words("length check", count)
    assert len(words) == count
    assert len(text.generate_text("length check", count).split()) == count


def test_shorter_output_is_prefix_of_longer() -> None:
    assert text.generate_words("prefix", 40)[:10] == text.generate_words("prefix", 10)


def test_variants_differ_but_variant_zero_is_default() -> None:
    assert text.generate_words("n choices", 8, 0) == text.generate_words("n choices", 8)
    assert text.generate_words("n choices", 8, 1) != text.generate_words("n choices", 8, 0)


def test_stream_pieces_concatenate_to_text() -> None:
    words = text.generate_words("streaming", 9)
    pieces = text.stream_pieces(words)
    assert "".join(pieces) == " ".join(words)
    assert not pieces[0].startswith(" ")
    assert all(piece.startswith(" ") for piece in pieces[1:])


def test_prompt_token_count_counts_words_with_minimum_one() -> None:
    assert text.prompt_token_count("one two  three\nfour") == 4
    assert text.prompt_token_count("") == 1


@pytest.mark.parametrize("dim", [1, 3, 32, 1024])
def test_embedding_is_unit_norm_with_requested_dims(dim: int) -> None:
    vector = text.embedding(text.text_key("embed me"), dim)
    assert len(vector) == dim
    assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-9)


def test_embedding_is_deterministic_and_input_specific() -> None:
    key = text.text_key("same input")
    assert text.embedding(key, 16) == text.embedding(key, 16)
    assert text.embedding(key, 16) != text.embedding(text.text_key("other input"), 16)
    assert text.embedding(text.tokens_key([1, 2]), 16) != text.embedding(text.text_key("1,2"), 16)


def test_embedding_base64_is_little_endian_float32_of_vector() -> None:
    key = text.text_key("wire format")
    decoded = struct.unpack("<8f", base64.b64decode(text.embedding_base64(key, 8)))
    assert decoded == pytest.approx(text.embedding(key, 8), abs=1e-6)


def test_rerank_score_orders_by_overlap_and_stays_in_unit_interval() -> None:
    query = "red apple pie"
    words = text.word_set(query)
    docs = ["blue sky", "Red apple pie!", "apple tart", "red apple"]
    scores = [text.rerank_score(query, words, doc) for doc in docs]
    assert sorted(range(len(docs)), key=lambda i: -scores[i]) == [1, 3, 2, 0]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_class_probs_form_a_distribution() -> None:
    probs = text.class_probs("classify me")
    assert probs == text.class_probs("classify me")
    assert math.isclose(sum(probs), 1.0)
    assert text.best_label(probs) == text.CLASS_LABELS[probs.index(max(probs))]


def test_fail_status_alone_fails_everything() -> None:
    settings = FaultSettings(fail_status=503)
    injector = FaultInjector(settings)
    assert [injector.failure_status() for _ in range(5)] == [503] * 5
    settings.update({"fail_status": None})
    assert injector.failure_status() is None


def test_fail_rate_is_reproducible_with_seed() -> None:
    def draws(seed: int) -> list[int | None]:
        injector = FaultInjector(FaultSettings(fail_rate=0.5), seed)
        return [injector.failure_status() for _ in range(64)]

    assert draws(7) == draws(7)
    assert 0 < draws(7).count(500) < 64


@pytest.mark.parametrize(
    "changes",
    [
        {"fail_rate": 1.5},
        {"fail_status": 99},
        {"latency_ms": -1},
        {"cut_stream_after": 1.5},
        {"health_status": None},
        {"health_status": True},
        {"bogus": 1},
    ],
)
def test_invalid_fault_changes_are_rejected_atomically(changes: dict[str, object]) -> None:
    settings = FaultSettings()
    with pytest.raises(ValueError):
        settings.update({"latency_ms": 5, **changes})
    assert settings == FaultSettings()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--latency-ms", "-1"),
        ("--token-delay-ms", "nan"),
        ("--fail-rate", "1.5"),
        ("--fail-status", "600"),
        ("--cut-stream-after", "-2"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        meshgate_main(["echo-worker", flag, value])
    assert exc_info.value.code == 2
    assert flag in capsys.readouterr().err
