"""Client bodies -> the engine's GenerateRequest (node/grpcproxy/build.py), with the real
pinned proto messages: what the engine receives, field by field, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.errors import ApiError
from node.grpcproxy.build import CHAT, COMPLETION, EMBEDDING, GENERATE, JSON_OBJECT, build
from node.grpcproxy.link import EngineModel
from node.text.tokenizer import TextTokenizer, load_tokenizer
from tests.tokenizer_files import build_tokenizer_dir

HELLO = [{"role": "user", "content": "Hello, world!"}]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return load_tokenizer(build_tokenizer_dir(tmp_path_factory.mktemp("llama3"), "llama3"))


def built(tok: TextTokenizer, route: str, body: dict[str, Any], limit: int | None = None) -> Any:
    return build(route, body, tok, EngineModel(max_context_length=limit), "rid-1", "m")


def wire(message: Any) -> Any:
    """The message as the engine decodes it from the bytes sent."""
    return type(message).FromString(message.SerializeToString())


def test_chat_is_templated_tokenized_and_given_semantic_defaults(tok: TextTokenizer) -> None:
    out = built(tok, CHAT, {"model": "m", "messages": HELLO})
    sent = wire(out.message)
    text = tok.apply_chat_template(HELLO)
    assert sent.request_id == "rid-1"
    assert sent.tokenized.original_text == text
    assert list(sent.tokenized.input_ids) == tok.encode(text, add_special_tokens=False)
    assert out.prompt_ids == list(sent.tokenized.input_ids)
    p = sent.sampling_params
    assert (p.temperature, p.top_p, p.top_k, p.min_p) == (1.0, 1.0, -1, 0.0)
    assert (p.frequency_penalty, p.presence_penalty, p.repetition_penalty) == (0.0, 0.0, 1.0)
    assert not p.HasField("max_new_tokens")  # the engine's own limit
    assert p.n == 1 and p.skip_special_tokens and not p.ignore_eos
    assert p.WhichOneof("constraint") is None
    assert not sent.stream and not sent.return_logprob


def test_chat_sampling_fields_reach_the_engine(tok: TextTokenizer) -> None:
    body = {
        "messages": HELLO,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "repetition_penalty": 1.1,
        "max_tokens": 99,
        "max_completion_tokens": 7,  # wins over max_tokens, as in OpenAI's API
        "stop": ["END", "\n\n"],
        "stop_token_ids": [3, 4],
        "ignore_eos": True,
        "n": 3,
        "skip_special_tokens": False,
        "logprobs": True,
        "top_logprobs": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": {"5": -100},
    }
    out = built(tok, CHAT, body)
    sent = wire(out.message)
    p = sent.sampling_params
    assert p.temperature == pytest.approx(0.2) and p.top_p == pytest.approx(0.9)
    assert (p.top_k, p.max_new_tokens, p.n) == (40, 7, 3)
    assert p.min_p == pytest.approx(0.05) and p.repetition_penalty == pytest.approx(1.1)
    assert (p.frequency_penalty, p.presence_penalty) == (0.5, -0.5)
    assert list(p.stop) == ["END", "\n\n"] and list(p.stop_token_ids) == [3, 4]
    assert p.ignore_eos and not p.skip_special_tokens and dict(p.logit_bias) == {"5": -100.0}
    assert sent.stream and sent.return_logprob and sent.top_logprobs_num == 5
    asked = out.asked
    assert asked.stream and asked.include_usage and asked.n == 3
    assert asked.stops == ("END", "\n\n") and not asked.skip_special_tokens


def test_tools_are_rendered_into_the_prompt_unless_tool_choice_is_none(tok: TextTokenizer) -> None:
    with_tools = wire(built(tok, CHAT, {"messages": HELLO, "tools": [WEATHER]}).message)
    assert "get_weather" in with_tools.tokenized.original_text
    body = {"messages": HELLO, "tools": [WEATHER], "tool_choice": "none"}
    assert "get_weather" not in wire(built(tok, CHAT, body).message).tokenized.original_text


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        ({"response_format": {"type": "json_object"}}, "json_schema", JSON_OBJECT),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "integer"}},
                }
            },
            "json_schema",
            json.dumps({"type": "integer"}),
        ),
        ({"regex": "[0-9]+"}, "regex", "[0-9]+"),
        ({"ebnf": 'root ::= "a"'}, "ebnf_grammar", 'root ::= "a"'),
    ],
)
def test_constraints_go_to_the_engine(
    tok: TextTokenizer, extra: dict[str, Any], field: str, value: str
) -> None:
    params = wire(built(tok, CHAT, {"messages": HELLO, **extra}).message).sampling_params
    assert params.WhichOneof("constraint") == field
    assert getattr(params, field) == value


def test_completion_and_generate_take_text_or_ids(tok: TextTokenizer) -> None:
    ids = tok.encode("Hello there")
    out = wire(built(tok, COMPLETION, {"prompt": ids, "max_tokens": 4}).message)
    assert list(out.tokenized.input_ids) == ids and out.sampling_params.max_new_tokens == 4
    out = wire(built(tok, COMPLETION, {"prompt": "Hello there"}).message)
    assert list(out.tokenized.input_ids) == ids
    body = {"text": "Hello there", "sampling_params": {"max_new_tokens": 2, "temperature": 0}}
    native = built(tok, GENERATE, body)
    sent = wire(native.message)
    assert list(sent.tokenized.input_ids) == ids
    assert sent.sampling_params.max_new_tokens == 2 and sent.sampling_params.temperature == 0
    assert native.asked.route == GENERATE
    embed = wire(built(tok, EMBEDDING, {"input": "Hello there"}).message)
    assert isinstance(embed, pb.EmbedRequest) and list(embed.tokenized.input_ids) == ids


@pytest.mark.parametrize(
    ("route", "body", "param", "words"),
    [
        (CHAT, {"messages": HELLO, "temperature": 3}, "temperature", "<= 2"),
        (CHAT, {"messages": HELLO, "n": 0}, "n", ">= 1"),
        (CHAT, {"messages": []}, "messages", "length"),
        (CHAT, {"messages": HELLO, "stop_token_ids": [10**6]}, "stop_token_ids", "out of range"),
        (CHAT, {"messages": HELLO, "regex": "a", "ebnf": "b"}, "ebnf_grammar", "one constraint"),
        (CHAT, {"messages": HELLO, "top_logprobs": 2}, "top_logprobs", "logprobs: true"),
        (
            CHAT,
            {"messages": HELLO, "response_format": {"type": "json_schema"}},
            "response_format",
            "schema",
        ),
        (COMPLETION, {"prompt": [1, 10**6]}, "prompt", "out of range"),
        (COMPLETION, {"prompt": "x", "echo": True}, "echo", "echo"),
        (GENERATE, {"text": "a", "input_ids": [1]}, "text", "one of"),
        (GENERATE, {"text": "a", "sampling_params": {"top_p": 2}}, "sampling_params.top_p", "<= 1"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(
    tok: TextTokenizer, route: str, body: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(ApiError) as caught:
        built(tok, route, body)
    assert caught.value.status == 400 and caught.value.param == param
    assert words in caught.value.message


def test_an_over_long_prompt_is_a_400_with_its_count_and_the_limit(tok: TextTokenizer) -> None:
    ids = tok.encode("The quick brown fox jumps over the lazy dog.")
    with pytest.raises(ApiError) as caught:
        built(tok, COMPLETION, {"prompt": ids}, limit=len(ids) - 1)
    assert caught.value.status == 400 and caught.value.code == "context_length_exceeded"
    assert f"{len(ids)} tokens" in caught.value.message
    assert f"limit is {len(ids) - 1}" in caught.value.message
    assert built(tok, COMPLETION, {"prompt": ids}, limit=len(ids)).prompt_ids == ids


def test_a_route_grpc_workers_do_not_serve_is_a_400(tok: TextTokenizer) -> None:
    with pytest.raises(ApiError) as caught:
        built(tok, "/v1/messages", {"messages": HELLO})
    assert caught.value.status == 400 and "HTTP worker" in caught.value.message
