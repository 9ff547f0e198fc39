"""Tool-call parsers: golden outputs per model family, and streaming equals whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.parsers.registry import TOOL_PARSERS, UnknownParser, parse_tool_calls, tool_parser
from node.parsers.tool_calls import collect
from node.parsers.tool_formats import DS_CALLS_BEGIN, DS_CALLS_END, ds_token
from tests.chunkings import chunkings, texts_made_of

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "search"}},
]
W = ("get_weather", {"city": "Paris", "unit": "c"})
S = ("search", {"q": "naïve ☃"})


def qwen(name: str, args: dict[str, Any]) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(args)}}}\n</tool_call>'


def deepseek(name: str, args: dict[str, Any]) -> str:
    return (
        ds_token("tool call begin")
        + "function"
        + ds_token("tool sep")
        + f"{name}\n```json\n{json.dumps(args)}\n```"
        + ds_token("tool call end")
    )


def kimi(name: str, args: dict[str, Any], i: int) -> str:
    return (
        f"<|tool_call_begin|>functions.{name}:{i}<|tool_call_argument_begin|>"
        f"{json.dumps(args)}<|tool_call_end|>"
    )


def llama(name: str, args: dict[str, Any]) -> str:
    return json.dumps({"name": name, "parameters": args})


KIMI_SECTION = "<|tool_calls_section_begin|>{}<|tool_calls_section_end|>"
BAD_JSON = '{"name": "get_weather", "arguments": {"city": }'

GOLDEN: list[tuple[str, str, str, list[tuple[str, dict[str, Any]]]]] = [
    ("json", json.dumps({"name": W[0], "arguments": W[1]}), "", [W]),
    (
        "json",
        json.dumps([{"name": W[0], "parameters": W[1]}, {"name": S[0], "arguments": S[1]}]),
        "",
        [W, S],
    ),
    ("json", "The weather is fine.", "The weather is fine.", []),
    ("json", BAD_JSON, BAD_JSON, []),
    ("qwen25", "Let me check.\n" + qwen(*W), "Let me check.\n", [W]),
    ("qwen25", qwen(*W) + "\n" + qwen(*S), "", [W, S]),
    ("qwen25", "No tools needed.", "No tools needed.", []),
    (
        "qwen25",
        f"<tool_call>\n{BAD_JSON}\n</tool_call>",
        f"<tool_call>\n{BAD_JSON}\n</tool_call>",
        [],
    ),
    (
        "qwen25",
        qwen(*W) + f"<tool_call>{BAD_JSON}</tool_call>",
        f"<tool_call>{BAD_JSON}</tool_call>",
        [W],
    ),
    ("llama3", "<|python_tag|>" + llama(*W) + "; " + llama(*S), "", [W, S]),
    ("llama3", llama(*W), "", [W]),
    ("llama3", "Sure: <|python_tag|>" + llama(*W), "Sure: ", [W]),
    ("llama3", "plain answer", "plain answer", []),
    # Llama 3.1's built-in JSON call, as its chat template asks for it.
    ("llama3", '{"name": "search", "parameters": {"q": "naïve ☃"}}', "", [S]),
    ("mistral", "[TOOL_CALLS] " + json.dumps([{"name": W[0], "arguments": W[1]}]), "", [W]),
    (
        "mistral",
        "Okay. [TOOL_CALLS] " + json.dumps([{"name": n, "arguments": a} for n, a in (W, S)]),
        "Okay. ",
        [W, S],
    ),
    ("mistral", "[TOOL_CALLS] [{oops", "[TOOL_CALLS] [{oops", []),
    # Tokenizer v11 and later (Mistral Small 3.2, Devstral, Magistral): name[ARGS]{...}.
    ("mistral", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "unit": "c"}', "", [W]),
    (
        "mistral",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "unit": "c"}'
        '[TOOL_CALLS]search[ARGS]{"q": "naïve ☃"}',
        "",
        [W, S],
    ),
    (
        "mistral",
        'Sure.[TOOL_CALLS]search[CALL_ID]a1B2c3D4e[ARGS]{"q": "naïve ☃"}',
        "Sure.",
        [S],
    ),
    # get_weather has a schema, so its call waits and is refused: the text stays.
    ("mistral", "[TOOL_CALLS]get_weather[ARGS]{broken", "[TOOL_CALLS]get_weather[ARGS]{broken", []),
    (
        "deepseek_v3",
        "Checking. " + DS_CALLS_BEGIN + deepseek(*W) + deepseek(*S) + DS_CALLS_END,
        "Checking. ",
        [W, S],
    ),
    ("deepseek_v3", "Nothing to call.", "Nothing to call.", []),
    # DeepSeek-V3's chat template puts a newline between calls.
    (
        "deepseek_v3",
        DS_CALLS_BEGIN + deepseek(*W) + "\n" + deepseek(*S) + DS_CALLS_END,
        "",
        [W, S],
    ),
    ("pythonic", '[get_weather(city="Paris", unit="c"), search(q="naïve ☃")]', "", [W, S]),
    ("pythonic", "[get_weather(city=open('x'))]", "[get_weather(city=open('x'))]", []),
    ("pythonic", "no calls", "no calls", []),
    # Llama 3.2's pythonic output, single quotes and all.
    ("pythonic", "[search(q='naïve ☃')]", "", [S]),
    ("kimi_k2", "Sure." + KIMI_SECTION.format(kimi(*W, 0) + kimi(*S, 1)), "Sure.", [W, S]),
    (
        "kimi_k2",
        KIMI_SECTION.format(
            "<|tool_call_begin|>functions.x:0<|tool_call_argument_begin|>{bad}<|tool_call_end|>"
        ),
        KIMI_SECTION.format(
            "<|tool_call_begin|>functions.x:0<|tool_call_argument_begin|>{bad}<|tool_call_end|>"
        ),
        [],
    ),
]


def canon(calls: list[dict[str, str]]) -> list[tuple[str, Any]]:
    return [(c["name"], json.loads(c["arguments"])) for c in calls]


def stream(name: str, chunks: list[str], tools: Any = TOOLS) -> tuple[str, list[dict[str, str]]]:
    parser = tool_parser(name, tools)
    return collect([parser.feed(c) for c in chunks] + [parser.finish()])


@pytest.mark.parametrize(("name", "text", "normal", "calls"), GOLDEN)
def test_golden_whole(name: str, text: str, normal: str, calls: list[Any]) -> None:
    got_normal, got_calls = parse_tool_calls(name, text, TOOLS)
    assert got_normal == normal
    assert canon(got_calls) == calls


@pytest.mark.parametrize(("name", "text", "normal", "calls"), GOLDEN)
def test_streaming_matches_whole(name: str, text: str, normal: str, calls: list[Any]) -> None:
    for i, chunks in enumerate(chunkings(text, seed=len(text))):
        got_normal, got_calls = stream(name, chunks)
        assert (got_normal, canon(got_calls)) == (normal, calls), (i, chunks)


def test_deltas_are_openai_shaped() -> None:
    parser = tool_parser("qwen25", TOOLS)
    deltas = [parser.feed("Hi " + qwen(*W) + qwen(*S)), parser.finish()]
    pieces = [p for d in deltas for p in d.tool_calls]
    first, args = pieces[0], pieces[1]
    assert first["index"] == 0 and first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    assert set(args) == {"index", "function"} and set(args["function"]) == {"arguments"}
    assert json.loads(args["function"]["arguments"]) == W[1]
    assert [p["index"] for p in pieces] == [0, 0, 1, 1]


def test_kimi_keeps_its_own_call_id() -> None:
    parser = tool_parser("kimi_k2")
    deltas = [parser.feed(KIMI_SECTION.format(kimi(*W, 0))), parser.finish()]
    assert next(p for d in deltas for p in d.tool_calls)["id"] == "functions.get_weather:0"


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("qwen25", "Hi " + qwen(*W), qwen(*S)),
        ("deepseek_v3", DS_CALLS_BEGIN + deepseek(*W), deepseek(*S) + DS_CALLS_END),
        ("kimi_k2", "<|tool_calls_section_begin|>" + kimi(*W, 0), kimi(*S, 1)),
    ],
)
def test_each_call_streams_when_its_end_tag_arrives(name: str, first: str, second: str) -> None:
    parser = tool_parser(name, TOOLS)
    got = [parser.feed(first), parser.feed(second), parser.finish()]
    assert [[p["index"] for p in d.tool_calls] for d in got] == [[0, 0], [1, 1], []]
    assert canon(collect(got)[1]) == [W, S]


def test_unknown_tools_dropped_when_tools_given_kept_without() -> None:
    text = qwen("launch_rockets", {"n": 1}) + qwen(*W)
    assert canon(parse_tool_calls("qwen25", text, TOOLS)[1]) == [W]
    assert [c["name"] for c in parse_tool_calls("qwen25", text)[1]] == [
        "launch_rockets",
        "get_weather",
    ]


def test_partial_marker_is_held_not_emitted() -> None:
    parser = tool_parser("qwen25", TOOLS)
    assert parser.feed("Hello <tool_ca").content == "Hello "
    assert parser.feed("ll>\n").content == ""


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownParser) as err:
        parse_tool_calls("nope", "")
    for name in TOOL_PARSERS:
        assert name in str(err.value)


texts = texts_made_of(
    [
        *(
            "<tool_call>",
            "</tool_call>",
            "[TOOL_CALLS]",
            "<|python_tag|>",
            DS_CALLS_BEGIN,
            DS_CALLS_END,
        ),
        *(ds_token("tool call begin"), ds_token("tool sep"), ds_token("tool call end"), "function"),
        *("<|tool_calls_section_begin|>", "<|tool_call_begin|>", "<|tool_call_argument_begin|>"),
        *(
            "<|tool_call_end|>",
            "functions.f:0",
            "\n```json\n",
            "\n```",
            '{"name": "f", "arguments": {}}',
        ),
        *("{", "}", "[", "]", '"name"', ":", ";", ",", "f(", ")", " ", "\n", "x=1"),
        *("f[ARGS]", "[CALL_ID]a1", '{"name": "f", "arguments": ', '"', "\\", '"}"'),
    ]
)


F = {"type": "function", "function": {"name": "f"}}
F_CHECKED = {"name": "f", "parameters": {"type": "object", "required": ["a"]}}
RULES: list[tuple[Any, Any]] = [
    (None, None),  # every call kept, streamed where the format can
    ([F_CHECKED], None),  # held for validation; refused calls back to text
    ([F], {"type": "function", "function": {"name": "f"}}),
    ([{"name": "g"}], None),  # every call of f dropped
    ([F], "none"),
]


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(TOOL_PARSERS)),
    text=texts,
    seed=st.integers(0, 1000),
    rules=st.sampled_from(RULES),
)
def test_arbitrary_text_never_raises_and_chunking_is_invariant(
    name: str, text: str, seed: int, rules: tuple[Any, Any]
) -> None:
    tools, choice = rules
    normal, calls = parse_tool_calls(name, text, tools, tool_choice=choice)
    for chunks in chunkings(text, seed):
        parser = tool_parser(name, tools, tool_choice=choice)
        got_normal, got_calls = collect([parser.feed(c) for c in chunks] + [parser.finish()])
        assert got_normal == normal
        # The very text of the arguments: a streamed call's fragments add up to the whole.
        assert got_calls == calls
