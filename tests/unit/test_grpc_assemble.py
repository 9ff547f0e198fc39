"""The engine's GenerateResponse messages -> the client's answer (node/grpcproxy/assemble.py):
the shapes an HTTP worker gives, text from the detokenizer, stop strings, usage, logprobs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.grpcproxy.assemble import DONE, Assembly
from node.grpcproxy.build import CHAT, COMPLETION, GENERATE, Asked
from node.text.tokenizer import TextTokenizer, load_tokenizer
from tests.tokenizer_files import build_tokenizer_dir

REPLY = "Café déjà vu 🙂 done."


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> TextTokenizer:
    return load_tokenizer(build_tokenizer_dir(tmp_path_factory.mktemp("qwen"), "qwen25"))


def chunks(ids: list[int], index: int = 0, prompt: int = 5) -> list[Any]:
    """One engine chunk per token, with cumulative counts, then the complete."""
    out = [
        pb.GenerateResponse(
            request_id="r",
            chunk=pb.GenerateStreamChunk(
                token_ids=[t], prompt_tokens=prompt, completion_tokens=n, index=index
            ),
        )
        for n, t in enumerate(ids, start=1)
    ]
    done = pb.GenerateComplete(
        finish_reason="stop", prompt_tokens=prompt, completion_tokens=len(ids), index=index
    )
    return [*out, pb.GenerateResponse(request_id="r", complete=done)]


def events(frames: list[bytes]) -> list[Any]:
    data = b"".join(frames)
    assert data.endswith(b"\n\n")
    return [
        orjson.loads(e[6:]) if e != b"data: [DONE]" else "[DONE]"
        for e in data.strip().split(b"\n\n")
    ]


def run(assembly: Assembly, responses: list[Any]) -> list[Any]:
    frames = assembly.opening()
    for response in responses:
        frames += list(assembly.feed(response))
        if assembly.done:
            break
    return events(frames + assembly.closing())


def test_a_chat_stream_has_the_http_workers_shape(tok: TextTokenizer) -> None:
    asked = Asked(CHAT, "m", stream=True, include_usage=True)
    got = run(Assembly(asked, tok, "abc"), chunks(tok.encode(REPLY, add_special_tokens=False)))
    head = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "model": "m"}
    for event in got[:-1]:
        assert {k: event[k] for k in head} == head and isinstance(event["created"], int)
    first, *middle, finish, usage, done = got
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == REPLY
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    n = len(tok.encode(REPLY, add_special_tokens=False))
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}
    assert done == "[DONE]"


def test_a_stop_string_ends_the_choice_and_trims_it(tok: TextTokenizer) -> None:
    asked = Asked(CHAT, "m", stream=True, stops=("vu",))
    assembly = Assembly(asked, tok, "abc")
    got = run(assembly, chunks(tok.encode(REPLY, add_special_tokens=False)))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in got[:-1])
    assert text == "Café déjà "
    assert got[-2]["choices"][0]["finish_reason"] == "stop" and got[-1] == "[DONE]"
    assert assembly.done and assembly.choices[0].matched == "vu"


def test_n_choices_stream_by_index_and_sum_their_usage(tok: TextTokenizer) -> None:
    a, b = (
        tok.encode("Hello", add_special_tokens=False),
        tok.encode("world!", add_special_tokens=False),
    )
    responses = [r for pair in zip(chunks(a, 0), chunks(b, 1), strict=False) for r in pair]
    responses += chunks(b, 1)[len(a) + 1 :] if len(b) > len(a) else chunks(a, 0)[len(b) + 1 :]
    assembly = Assembly(Asked(CHAT, "m", n=2), tok, "x")
    for response in responses:
        assert list(assembly.feed(response)) == []  # a plain request: no frames
    whole = assembly.whole()
    assert whole["object"] == "chat.completion" and whole["id"] == "chatcmpl-x"
    assert [c["message"] for c in whole["choices"]] == [
        {"role": "assistant", "content": "Hello"},
        {"role": "assistant", "content": "world!"},
    ]
    assert [c["finish_reason"] for c in whole["choices"]] == ["stop", "stop"]
    assert whole["usage"]["completion_tokens"] == len(a) + len(b)


def test_a_plain_answer_from_the_complete_alone(tok: TextTokenizer) -> None:
    ids = tok.encode(REPLY, add_special_tokens=False)
    complete = pb.GenerateComplete(
        output_ids=ids,
        finish_reason="length",
        prompt_tokens=3,
        completion_tokens=len(ids),
        cached_tokens=2,
    )
    assembly = Assembly(Asked(COMPLETION, "m"), tok, "y")
    list(assembly.feed(pb.GenerateResponse(complete=complete)))
    whole = assembly.whole()
    assert whole["object"] == "text_completion"
    assert whole["choices"] == [
        {"index": 0, "text": REPLY, "logprobs": None, "finish_reason": "length"}
    ]
    assert whole["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}


def test_logprobs_in_openais_chat_shape(tok: TextTokenizer) -> None:
    ids = tok.encode("Hello", add_special_tokens=False)[:1]
    top = pb.TopLogProbs(values=[-0.1, -2.5], token_ids=[ids[0], 7])
    logprobs = pb.OutputLogProbs(token_logprobs=[-0.1], token_ids=ids, top_logprobs=[top])
    chunk = pb.GenerateStreamChunk(token_ids=ids, output_logprobs=logprobs, completion_tokens=1)
    assembly = Assembly(Asked(CHAT, "m", stream=True, logprobs=True, top_logprobs=1), tok, "z")
    (event,) = events(list(assembly.feed(pb.GenerateResponse(chunk=chunk))))
    shown = event["choices"][0]["logprobs"]["content"]
    word = tok.decode(ids, skip_special_tokens=False)
    assert shown == [
        {
            "token": word,
            "logprob": pytest.approx(-0.1),
            "bytes": list(word.encode()),
            "top_logprobs": [
                {"token": word, "logprob": pytest.approx(-0.1), "bytes": list(word.encode())}
            ],
        }
    ]


def test_native_generate_chunks_carry_the_text_so_far(tok: TextTokenizer) -> None:
    ids = tok.encode("Hello there", add_special_tokens=False)
    assembly = Assembly(Asked(GENERATE, "m", stream=True), tok, "g")
    got = run(assembly, chunks(ids))
    assert got[-1] == "[DONE]" and got[-2]["text"] == "Hello there"
    assert got[-2]["meta_info"]["finish_reason"] == {"type": "stop", "matched": None}
    assert all(e["meta_info"]["finish_reason"] is None for e in got[:-2])
    assert got[-2]["meta_info"]["completion_tokens"] == len(ids)
    assert DONE == b"data: [DONE]\n\n"
