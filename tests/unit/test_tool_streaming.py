"""Tool calls: argument fragments as they arrive, tool_choice, and schema validation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.parsers.call_blocks import HEAD_LIMIT, CallHead
from node.parsers.json_calls import JsonHead
from node.parsers.registry import finish_reason, parse_function_call, tool_parser
from node.parsers.tool_calls import ToolDelta, collect
from node.parsers.tool_formats import (
    DS_CALLS_BEGIN,
    DS_CALLS_END,
    DS_HEAD,
    JSON_HEAD,
    KIMI_HEAD,
    LLAMA3_HEAD,
    MISTRAL_HEAD,
    QWEN_HEAD,
)
from node.parsers.tool_rules import MAX_TOOLS, check_tools
from tests.chunkings import chunkings, count_reads
from tests.unit.test_tool_parsers import deepseek, kimi, llama, qwen

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
    "additionalProperties": False,
}
FREE = {"type": "function", "function": {"name": "search"}}
CHECKED = {"type": "function", "function": {"name": "forecast", "parameters": SCHEMA}}
TOOLS = [FREE, CHECKED]
ARGS = {"q": "a } b ``` c", "nested": {"deep": [1, {"x": "}"}]}}
KIMI_SECTION = "<|tool_calls_section_begin|>{}<|tool_calls_section_end|>"

STREAMED = {
    "qwen25": "Let me look.\n" + qwen("search", ARGS) + "\n" + qwen("search", {"q": 2}),
    "deepseek_v3": DS_CALLS_BEGIN
    + deepseek("search", ARGS)
    + deepseek("search", {})
    + DS_CALLS_END,
    "kimi_k2": KIMI_SECTION.format(kimi("search", ARGS, 0) + kimi("search", {"q": 2}, 1)),
    "llama3": "<|python_tag|>" + llama("search", ARGS) + "; " + llama("search", {"q": 2}),
    "json": json.dumps([{"name": "search", "arguments": a} for a in (ARGS, {"q": 2})]),
    "mistral": "".join(f"[TOOL_CALLS]search[ARGS]{json.dumps(a)}" for a in (ARGS, {"q": 2})),
}


def feed_all(name: str, chunks: list[str], tools: Any = TOOLS, **options: Any) -> list[ToolDelta]:
    parser = tool_parser(name, tools, **options)
    return [parser.feed(c) for c in chunks] + [parser.finish()]


@pytest.mark.parametrize("name", sorted(STREAMED))
def test_arguments_stream_in_fragments_before_the_call_ends(name: str) -> None:
    text = STREAMED[name]
    deltas = feed_all(name, list(text))
    pieces = [(i, p) for i, d in enumerate(deltas) for p in d.tool_calls if p["index"] == 0]
    fragments = [p["function"]["arguments"] for _, p in pieces[1:]]
    # The first piece starts the call; many fragments follow, each on its own character.
    assert pieces[0][1]["function"] == {"name": "search", "arguments": ""}
    assert len(fragments) > 20 and all(fragments)
    assert json.loads("".join(fragments)) == ARGS
    # ... and the first fragment left long before the call's end tag arrived.
    assert pieces[1][0] < text.index('"nested"')
    whole = parse_function_call(name, text, TOOLS)
    assert collect(deltas) == (whole.normal_text, whole.calls)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(STREAMED)), seed=st.integers(0, 10_000))
def test_fragments_add_up_to_the_whole_parse_in_any_chunking(name: str, seed: int) -> None:
    text = STREAMED[name]
    whole = parse_function_call(name, text, TOOLS)
    for chunks in chunkings(text, seed)[1:]:
        assert collect(feed_all(name, chunks)) == (whole.normal_text, whole.calls)


def test_only_what_may_close_the_call_is_held_back() -> None:
    parser = tool_parser("qwen25", TOOLS)
    head = parser.feed('<tool_call>\n{"name": "search", "arguments": {"q": {"a": 1}')
    assert [p["function"].get("arguments") for p in head.tool_calls] == ["", '{"q": {"a": 1']
    # The last brace may be the wrapper's: it goes only once another follows.
    assert parser.feed("}").tool_calls[0]["function"]["arguments"] == "}"
    assert parser.feed(" ").tool_calls == []
    assert parser.feed("\n</tool_ca").tool_calls == []
    assert parser.feed("ll>").tool_calls == []
    assert collect([parser.finish()]) == ("", [])


def test_a_mistral_call_streams_until_its_object_closes() -> None:
    parser = tool_parser("mistral", TOOLS)
    assert parser.feed("[TOOL_CALLS]search[ARG").tool_calls == []
    first = parser.feed('S]{"q": "}')
    assert [p["function"].get("arguments") for p in first.tool_calls] == ["", '{"q": "}']
    assert parser.feed('"} and then').tool_calls[0]["function"]["arguments"] == '"}'
    assert parser.finish().content == "and then"


def test_a_truncated_call_keeps_what_was_sent_and_is_reported() -> None:
    text = '<tool_call>\n{"name": "search", "arguments": {"q": "cut of'
    parser = tool_parser("qwen25", TOOLS)
    deltas = [parser.feed(c) for c in text] + [parser.finish()]
    assert collect(deltas)[1] == [{"name": "search", "arguments": '{"q": "cut of'}]
    assert [(c.name, c.emitted) for c in parser.invalid_calls] == [("search", True)]
    assert parser.valid_emitted == 0 and finish_reason("length", parser) == "length"
    assert finish_reason("stop", parser) == "stop"
    assert parse_function_call("qwen25", text, TOOLS).calls == collect(deltas)[1]


def test_a_schema_holds_the_call_until_it_closes_and_validates() -> None:
    good = qwen("forecast", {"city": "Oslo", "days": 3})
    parser = tool_parser("qwen25", TOOLS)
    assert all(not parser.feed(c).tool_calls for c in good[:-1])
    last = parser.feed(good[-1])
    assert [p["function"].get("arguments") for p in last.tool_calls][1:] == [
        '{"city": "Oslo", "days": 3}'
    ]
    assert finish_reason("stop", parser) == "tool_calls"


@pytest.mark.parametrize(
    "args",
    [{"days": 3}, {"city": "Oslo", "days": 0}, {"city": "Oslo", "extra": 1}, {"city": 5}],
)
def test_arguments_failing_the_schema_stay_text_and_are_reported(args: dict[str, Any]) -> None:
    bad = qwen("forecast", args)
    text = "Hi " + bad + qwen("search", {"q": 1})
    whole = parse_function_call("qwen25", text, TOOLS)
    assert whole.normal_text == "Hi " + bad
    assert [c["name"] for c in whole.calls] == ["search"]
    assert len(whole.invalid_calls) == 1
    assert whole.invalid_calls[0].name == "forecast"
    assert "schema of forecast" in whole.invalid_calls[0].reason
    for chunks in chunkings(text, seed=7):
        parser = tool_parser("qwen25", TOOLS)
        deltas = [parser.feed(c) for c in chunks] + [parser.finish()]
        assert collect(deltas) == (whole.normal_text, whole.calls)
        assert parser.invalid_calls == whole.invalid_calls


def test_tool_choice_none_leaves_the_text_alone() -> None:
    text = "Hi " + qwen("search", {"q": 1})
    assert parse_function_call("qwen25", text, TOOLS, tool_choice="none").normal_text == text
    assert collect(feed_all("qwen25", list(text), tool_choice="none")) == (text, [])


def test_a_named_tool_choice_keeps_only_that_function() -> None:
    other = qwen("search", {"q": 1})
    text = other + qwen("forecast", {"city": "Oslo"})
    choice = {"type": "function", "function": {"name": "forecast"}}
    whole = parse_function_call("qwen25", text, TOOLS, tool_choice=choice)
    assert whole.normal_text == other and [c["name"] for c in whole.calls] == ["forecast"]
    assert whole.invalid_calls == []
    assert collect(feed_all("qwen25", list(text), tool_choice=choice))[1] == whole.calls


def test_required_parses_as_auto_and_reports_no_call() -> None:
    parser = tool_parser("qwen25", TOOLS, tool_choice="required")
    parser.feed("No tools today.")
    assert parser.finish().tool_calls == [] and parser.emitted == 0


def test_unknown_function_is_dropped_and_reported() -> None:
    whole = parse_function_call("qwen25", qwen("launch", {"n": 1}), TOOLS)
    assert (whole.normal_text, whole.calls) == ("", [])
    assert "no tool named 'launch'" in whole.invalid_calls[0].reason


def nest(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(
    ("tools", "choice", "problem"),
    [
        ("x", None, "tools must be a list"),
        ([{"type": "function"}], None, "tools[0] must be"),
        ([{"name": "f", "parameters": {"type": 5}}], None, "not a valid JSON schema"),
        ([{"name": "f", "parameters": "x"}], None, "must be a JSON schema"),
        ([{"name": "f", "parameters": {"$schema": "urn:nope"}}], None, "does not know"),
        ([{"name": "f", "parameters": {"a": "x" * 70_000}}], None, "the limit is 65536"),
        ([{"name": "f", "parameters": nest(40)}], None, "deeper than 32"),
        ([FREE] * (MAX_TOOLS + 1), None, f"the limit is {MAX_TOOLS}"),
        (TOOLS, "sometimes", "tool_choice must be"),
        (TOOLS, {"type": "function", "function": {"name": "nope"}}, "not in tools"),
    ],
)
def test_unusable_tools_are_named(tools: Any, choice: Any, problem: str) -> None:
    assert problem in (check_tools(tools, choice) or "")


def test_good_tools_pass_and_a_broken_schema_never_raises_while_parsing() -> None:
    assert check_tools(TOOLS, "auto") is None and check_tools(None) is None
    broken = [{"name": "forecast", "parameters": {"$ref": "http://example.com/s.json"}}]
    whole = parse_function_call("qwen25", qwen("forecast", {"city": "x"}), broken)
    assert whole.calls == [] and "cannot be applied" in whole.invalid_calls[0].reason


@pytest.mark.parametrize(
    "head",
    [QWEN_HEAD, DS_HEAD, KIMI_HEAD, JSON_HEAD, LLAMA3_HEAD, MISTRAL_HEAD],
    ids=["qwen25", "deepseek_v3", "kimi_k2", "json", "llama3", "mistral"],
)
def test_no_call_head_is_longer_than_a_stream_looks(head: CallHead | JsonHead) -> None:
    # A stream stops looking for a head HEAD_LIMIT characters after the last call; the
    # whole-text parse has no such limit, so the two agree only if no head is longer.
    assert re._parser.parse(head.pattern.pattern).getwidth()[1] < HEAD_LIMIT  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(STREAMED))
def test_a_one_character_stream_reads_each_character_a_bounded_number_of_times(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linear time, counted rather than timed: every read of the section's text, in total
    # (each feed looks at the last end-tag's length of text, and at what is held back).
    long_args = {"q": "x } ` " * 2000}
    text = STREAMED[name].replace(json.dumps(ARGS), json.dumps(long_args))
    read = count_reads(monkeypatch)
    deltas = feed_all(name, list(text))
    assert len(text) > 12_000 and read[0] < 32 * len(text)  # quadratic: ~6000 times
    assert json.loads(collect(deltas)[1][0]["arguments"]) == long_args
