"""The gateway's parsing of HTTP workers' chat output: which parser applies, the body the
worker gets, and the rewrite of whole answers and SSE streams (node/outparse)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest

from node import config
from node.config import ConfigError
from node.errors import ApiError
from node.metrics import Metrics
from node.outparse.choice import (
    NO_PARSERS,
    REASONING_NAMES,
    TOOL_NAMES,
    parser_settings,
    read_choice,
)
from node.outparse.choice_state import ChoiceState
from node.outparse.plan import Plan, plan_for, worker_body
from node.outparse.rewrite import StreamRewriter, rewrite_whole

CHAT = "/v1/chat/completions"
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
RAW = f"<think>cold?</think>Checking.{CALL}"
BOTH = Plan("deepseek_r1", "qwen25")
HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


class Failures:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


# --- which parser applies ------------------------------------------------------------------


def test_entries_give_a_default_and_per_model_parsers() -> None:
    choice = read_choice(["llama3,qwen-coder=qwen25", "org/m=json"], TOOL_NAMES)
    assert choice.default == "llama3"
    assert dict(choice.by_model) == {"qwen-coder": "qwen25", "org/m": "json"}
    assert choice.name_for("pythonic", "qwen-coder") == "pythonic"  # the worker's own wins
    assert choice.name_for(None, "qwen-coder") == "qwen25"  # then its model's entry
    assert choice.name_for(None, "other") == "llama3"  # then the default


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (["nope"], "unknown parser 'nope'"),
        (["m=nope"], "unknown parser 'nope'"),
        (["=qwen3"], "names no model"),
        (["qwen3,deepseek_r1"], "two defaults"),
        (["m=qwen3", "m=kimi"], "given twice"),
    ],
)
def test_bad_entries_say_what_to_fix(entries: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        read_choice(entries, REASONING_NAMES)


def test_the_node_refuses_an_unknown_parser_at_start_listing_the_known() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(["--tool-call-parser", "llama3,m=nope"])
    with pytest.raises(ConfigError, match=r"--tool-call-parser: unknown parser 'nope'.*qwen25"):
        config.load(args, environ={})
    env = {"MESHGATE_REASONING_PARSER": "qwen3,m=deepseek_r1"}
    loaded = config.load(parser.parse_args([]), environ=env)
    assert loaded.reasoning_parser == ["qwen3", "m=deepseek_r1"]


def test_a_plan_only_where_a_parser_applies() -> None:
    flags = parser_settings(["m=qwen3"], ["llama3"])
    assert plan_for(NO_PARSERS, CHAT, {}, {}, "m") is None  # nothing configured: no work
    assert plan_for(flags, "/v1/completions", {}, {}, "m") is None
    assert plan_for(flags, CHAT, {}, {}, "m") == Plan("qwen3", "llama3", None, None, True)
    own = {"reasoning_parser": "deepseek_r1", "tool_parser": "qwen25"}
    assert plan_for(flags, CHAT, {}, own, "m") == Plan("deepseek_r1", "qwen25", None, None, True)
    assert plan_for(NO_PARSERS, CHAT, {"tool_choice": "none"}, {"tool_parser": "json"}, "m") is None
    off = {"separate_reasoning": False, "tool_choice": "none"}
    assert plan_for(flags, CHAT, off, {}, "m") is None
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]
    forced = {"tools": tools, "tool_choice": {"type": "function", "function": {"name": "b"}}}
    plan = plan_for(flags, CHAT, forced, {}, "m")
    assert plan is not None and plan.tools == tools
    assert plan.tool_choice == forced["tool_choice"]
    state = ChoiceState(Plan(None, "qwen25", tools, forced["tool_choice"]))
    called_a = '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    piece = state.feed(called_a) + state.finish()
    assert piece.tool_calls == [] and piece.content == called_a  # only b may be called
    assert state.finish_reason("stop") == "stop"
    assert plan_for(flags, CHAT, {"tools": tools}, {}, "m").tools == tools  # type: ignore[union-attr]
    with pytest.raises(ApiError) as bad:
        plan_for(flags, CHAT, {"stream_reasoning": "no"}, {}, "m")
    assert bad.value.status == 400 and "stream_reasoning" in str(bad.value)


def test_the_gateway_options_are_kept_from_the_worker_only_when_sent() -> None:
    body = b'{"model":"m","messages":[]}'
    assert worker_body(body, orjson.loads(body)) is body
    sent = {"model": "m", "separate_reasoning": True, "stream_reasoning": False}
    assert orjson.loads(worker_body(orjson.dumps(sent), sent)) == {"model": "m"}


# --- whole answers -------------------------------------------------------------------------


def completion(message: dict[str, Any], n: int = 1) -> bytes:
    choice = {"message": {"role": "assistant", **message}, "finish_reason": "stop"}
    return orjson.dumps({"id": "x", "choices": [{"index": i, **choice} for i in range(n)]})


def test_a_whole_answer_gets_reasoning_and_tool_calls() -> None:
    failed = Failures()
    out = orjson.loads(rewrite_whole(completion({"content": RAW}, n=2), BOTH, failed))
    for choice in out["choices"]:
        message = choice["message"]
        assert message["reasoning_content"] == "cold?" and message["content"] == "Checking."
        [call] = message["tool_calls"]
        assert call["id"].startswith("call_") and call["type"] == "function"
        assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        assert choice["finish_reason"] == "tool_calls"
    assert failed.count == 0


def test_a_structured_answer_is_left_alone_and_a_failure_keeps_the_raw_answer() -> None:
    failed = Failures()
    own = completion({"content": RAW, "reasoning_content": "mine"})
    assert rewrite_whole(own, BOTH, failed) is own
    broken = Plan("no-such-parser", None)
    raw = completion({"content": RAW})
    assert rewrite_whole(raw, broken, failed) is raw and failed.count == 1
    assert rewrite_whole(b"not json", BOTH, failed) == b"not json" and failed.count == 2


# --- streams -------------------------------------------------------------------------------


def sse(text: str, n: int = 1, size: int = 3, finish: bool = True) -> bytes:
    frames = []
    for i in range(n):
        delta = {"role": "assistant", "content": ""}
        frames.append({**HEAD, "choices": [{"index": i, "delta": delta, "finish_reason": None}]})
    for at in range(0, len(text), size):
        for i in range(n):
            delta = {"content": text[at : at + size]}
            frames.append(
                {**HEAD, "choices": [{"index": i, "delta": delta, "finish_reason": None}]}
            )
    for i in range(n if finish else 0):
        frames.append({**HEAD, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
    frames.append({**HEAD, "choices": [], "usage": {"total_tokens": 9}})
    return b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames) + b"data: [DONE]\n\n"


def relay(raw: bytes, plan: Plan, failed: Failures, cut: int = 7) -> list[Any]:
    """The rewriter fed the stream `cut` bytes at a time; the events the client gets."""
    rewriter = StreamRewriter(plan, failed)
    out = b"".join(rewriter.feed(raw[at : at + cut]) for at in range(0, len(raw), cut))
    out += rewriter.close()
    assert out.endswith(b"data: [DONE]\n\n")
    return [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e and e != b"data: [DONE]"]


def accumulate(events: list[Any]) -> dict[int, dict[str, Any]]:
    """Each choice as a client joins its deltas."""
    got: dict[int, dict[str, Any]] = {}
    for event in events:
        for choice in event["choices"]:
            acc = got.setdefault(choice["index"], {"reasoning": [], "content": "", "calls": []})
            delta = choice["delta"]
            if "reasoning_content" in delta:
                acc["reasoning"].append(delta["reasoning_content"])
            acc["content"] += delta.get("content") or ""
            acc["calls"] += delta.get("tool_calls", [])
            acc["finish"] = choice["finish_reason"] or acc.get("finish")
    return got


def test_a_stream_split_anywhere_gives_each_choice_reasoning_and_tool_calls() -> None:
    failed = Failures()
    events = relay(sse(RAW, n=2), BOTH, failed)
    assert events[-1]["usage"] == {"total_tokens": 9}  # the usage chunk passes as it came
    for acc in accumulate(events).values():
        assert "".join(acc["reasoning"]) == "cold?" and len(acc["reasoning"]) > 1
        assert acc["content"] == "Checking." and acc["finish"] == "tool_calls"
        first, *fragments = acc["calls"]
        assert first["function"] == {"name": "get_weather", "arguments": ""}
        # qwen25's arguments stream in fragments as they arrive (docs/parsers.md).
        assert all(set(f) == {"index", "function"} and f["index"] == 0 for f in fragments)
        assert "".join(f["function"]["arguments"] for f in fragments) == '{"city": "Paris"}'
        assert len(fragments) > 1
    assert failed.count == 0


def test_held_reasoning_comes_in_one_piece_and_the_parsers_flush_before_done() -> None:
    failed = Failures()
    plan = Plan("qwen3", "llama3", stream_reasoning=False)
    raw = sse('<think>a long thought</think>{"name": "f", "parameters": {}}', finish=False)
    [acc] = accumulate(relay(raw, plan, failed)).values()  # no finish_reason: flushed at [DONE]
    assert acc["reasoning"] == ["a long thought"] and acc["content"] == ""
    functions = [call["function"] for call in acc["calls"]]
    assert functions == [{"name": "f", "arguments": ""}, {"arguments": "{}"}]


def test_a_stream_the_parser_fails_on_is_relayed_raw_and_counted() -> None:
    failed = Failures()
    [acc] = accumulate(relay(sse(RAW), Plan("no-such-parser", None), failed)).values()
    assert acc["content"] == RAW and failed.count == 1
    structured = sse("raw <think>").replace(b'"content":""', b'"reasoning_content":"own"', 1)
    [acc] = accumulate(relay(structured, BOTH, failed)).values()
    assert acc["reasoning"] == ["own"] and acc["content"] == "raw <think>"


def test_a_choice_too_long_to_hold_is_flushed_and_relayed_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("node.outparse.rewrite.MAX_CHOICE_CHARS", 20)
    failed = Failures()
    text = "Hi <tool_call>" + "x" * 30 + "</tool_call> after"
    [acc] = accumulate(relay(sse(text), Plan(None, "qwen25"), failed)).values()
    assert acc["content"] == text and acc["calls"] == [] and failed.count == 1


def test_failures_are_counted_on_the_nodes_metrics() -> None:
    metrics = Metrics("n1")
    raw = completion({"content": RAW})
    assert rewrite_whole(raw, Plan("no-such-parser", None), metrics.parse_failed) is raw
    assert b'meshgate_output_parse_failures_total{node="n1"} 1.0' in metrics.render()
