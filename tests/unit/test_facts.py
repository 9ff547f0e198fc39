"""Unit tests of request-body parsing for routing (`node/proxy/facts.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from node.errors import ApiError
from node.proxy.facts import (
    PROMPT_CHARS,
    facts_of,
    model_of,
    parse_body,
    prompt_text,
    wants_stream,
)

# --- parse_body ------------------------------------------------------------------------------


def test_parse_body_returns_the_object() -> None:
    assert parse_body(b'{"model": "m", "stream": true}') == {"model": "m", "stream": True}


def test_parse_body_empty() -> None:
    with pytest.raises(ApiError) as caught:
        parse_body(b"")
    assert caught.value.status == 400
    assert "empty" in caught.value.message
    assert "JSON object" in caught.value.message


@pytest.mark.parametrize("body", [b"{", b"not json", b"{'a': 1}", b"   ", b"\xff\xfe"])
def test_parse_body_invalid_json(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_body(body)
    assert caught.value.status == 400
    assert caught.value.message.startswith("request body is not valid JSON")
    assert caught.value.code == "BAD_REQUEST"


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_parse_body_non_object(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        parse_body(body)
    assert caught.value.status == 400
    assert caught.value.message == "request body must be a JSON object"


# --- model_of / wants_stream -------------------------------------------------------------------


def test_model_of() -> None:
    assert model_of({"model": "llama"}) == "llama"
    assert model_of({}) is None
    assert model_of({"model": None}) is None


@pytest.mark.parametrize("model", ["", 5, ["m"], {"m": 1}, True])
def test_model_of_type_errors(model: Any) -> None:
    with pytest.raises(ApiError) as caught:
        model_of({"model": model})
    assert caught.value.status == 400
    assert caught.value.param == "model"
    assert "model" in caught.value.message


def test_wants_stream() -> None:
    assert wants_stream({}) is False
    assert wants_stream({"stream": True}) is True
    assert wants_stream({"stream": False}) is False


@pytest.mark.parametrize("stream", ["true", 1, 0, None, [True]])
def test_wants_stream_type_errors(stream: Any) -> None:
    with pytest.raises(ApiError) as caught:
        wants_stream({"stream": stream})
    assert caught.value.status == 400
    assert caught.value.param == "stream"
    assert "stream" in caught.value.message


# --- prompt_text -------------------------------------------------------------------------------


def test_chat_messages_with_string_content() -> None:
    data = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ]
    }
    assert prompt_text(data) == "be brief\nhello"


def test_chat_messages_with_list_of_parts() -> None:
    data = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at"},
                    {"type": "image_url", "image_url": {"url": "http://img"}},
                    {"type": "text", "text": "this"},
                    "not a part",
                    {"type": "text", "text": 5},
                ],
            },
            {"role": "assistant", "content": None},
            "not a message",
            {"role": "user"},
            {"role": "user", "content": "ok"},
        ]
    }
    assert prompt_text(data) == "look at\nthis\nok"


def test_chat_messages_are_truncated() -> None:
    long = "a" * (PROMPT_CHARS * 3)
    data = {"messages": [{"role": "user", "content": long}, {"role": "user", "content": "b"}]}
    assert prompt_text(data) == "a" * PROMPT_CHARS
    data = {"messages": [{"role": "user", "content": "x" * 3000}, {"content": "y" * 3000}]}
    text = prompt_text(data)
    assert len(text) == PROMPT_CHARS
    assert text == ("x" * 3000 + "\n" + "y" * 3000)[:PROMPT_CHARS]


def test_many_short_messages_are_truncated_too() -> None:
    data = {"messages": [{"role": "user", "content": "x"}] * 3000}
    assert len(prompt_text(data)) <= PROMPT_CHARS


def test_completions_prompt() -> None:
    assert prompt_text({"prompt": "once upon"}) == "once upon"
    assert prompt_text({"prompt": ["first", "second"]}) == "first"
    assert prompt_text({"prompt": [1, 2, 3]}) == ""  # token ids: no text
    assert prompt_text({"prompt": []}) == ""
    assert prompt_text({"prompt": "p" * (PROMPT_CHARS + 10)}) == "p" * PROMPT_CHARS
    assert prompt_text({"prompt": ["q" * (PROMPT_CHARS + 10)]}) == "q" * PROMPT_CHARS


def test_generate_text_and_embeddings_input() -> None:
    assert prompt_text({"text": "native prompt"}) == "native prompt"
    assert prompt_text({"input": "embed me"}) == "embed me"
    assert prompt_text({"input": ["one", "two"]}) == "one"
    assert prompt_text({"query": "rerank this"}) == "rerank this"
    assert prompt_text({"input": "i" * (PROMPT_CHARS * 2)}) == "i" * PROMPT_CHARS


def test_prompt_field_order_and_missing() -> None:
    assert prompt_text({"prompt": "p", "input": "i"}) == "p"
    assert prompt_text({"prompt": 5, "input": "i"}) == "i"
    assert prompt_text({"messages": "not a list", "prompt": "p"}) == "p"
    assert prompt_text({"messages": [], "prompt": "p"}) == ""  # a chat body, with no text
    assert prompt_text({}) == ""
    assert prompt_text({"model": "m"}) == ""


# --- facts_of ----------------------------------------------------------------------------------


def test_facts_of_prefers_routing_key() -> None:
    facts = facts_of({"user": "u1", "prompt": "hi"}, "m", "header-key", with_prompt=True)
    assert facts.model == "m"
    assert facts.routing_key == "header-key"
    assert facts.prompt == "hi"


def test_facts_of_falls_back_to_user() -> None:
    assert facts_of({"user": "u1"}, "m", None, with_prompt=False).routing_key == "u1"
    assert facts_of({"user": "u1"}, "m", "", with_prompt=False).routing_key == "u1"


@pytest.mark.parametrize("user", [None, "", 5, ["u"]])
def test_facts_of_ignores_a_non_string_user(user: Any) -> None:
    assert facts_of({"user": user}, None, None, with_prompt=False).routing_key is None


def test_facts_of_reads_the_prompt_only_when_asked() -> None:
    data = {"messages": [{"role": "user", "content": "hello"}]}
    assert facts_of(data, "m", None, with_prompt=False).prompt == ""
    assert facts_of(data, "m", None, with_prompt=True).prompt == "hello"
    assert facts_of(data, None, None, with_prompt=True).model is None
