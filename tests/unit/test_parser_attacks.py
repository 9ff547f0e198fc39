"""Review findings 1 and 2: crafted model output and client schemas the parsers once
took seconds to minutes on. Each runs the attack at a size that was slow and checks
the answer; a timeout guards against a hang, and the held-tail scan is counted."""

from __future__ import annotations

import json
import random
import re

import pytest

from node.parsers import tool_formats
from node.parsers.call_blocks import CallHead
from node.parsers.calls import ToolCall
from node.parsers.registry import parse_function_call, tool_parser
from node.parsers.tool_calls import collect
from node.parsers.tool_formats import (
    DS_CALL_BEGIN,
    DS_CALL_END,
    DS_CALLS_BEGIN,
    DS_HEAD,
    DS_SEP,
    KIMI_HEAD,
    QWEN_HEAD,
    tagged_block,
)
from tests.chunkings import count_reads

N = 20_000


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("parser", "head"),
    [
        ("qwen25", '<tool_call>{"name":"f","arguments":{'),
        (
            "kimi_k2",
            "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0"
            "<|tool_call_argument_begin|>{",
        ),
    ],
)
def test_a_long_whitespace_run_in_open_arguments(parser: str, head: str) -> None:
    # Was 50 s (qwen25) and 30 s (kimi_k2): the held-suffix regex tried every start.
    parsed = parse_function_call(parser, head + " " * N + "x", None)
    assert [c["name"] for c in parsed.calls] == ["f"]
    assert parsed.calls[0]["arguments"] == "{" + " " * N + "x"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("parser", "text"),
    [
        ("qwen25", "<tool_call>" + " " * N + "x" + " " * N + "</tool_call>"),
        ("kimi_k2", "<|tool_calls_section_begin|>" + "<|tool_call_begin|>a:1" * 2000),
    ],
)
def test_headless_blocks_fall_back_in_linear_time(parser: str, text: str) -> None:
    parsed = parse_function_call(parser, text, None)
    assert parsed.calls == []


@pytest.mark.timeout(20)
def test_deepseek_v3_separators_without_a_fence() -> None:
    # Was > 230 s at 32K characters: three lazy groups backtracking over every separator.
    unit = DS_CALL_BEGIN + "a" + DS_SEP
    text = DS_CALLS_BEGIN + unit * (32_000 // len(unit)) + DS_CALL_END
    parsed = parse_function_call("deepseek_v3", text, None)
    assert parsed.calls == [] and len(text) > 32_000


@pytest.mark.timeout(20)
def test_deepseek_v3_reads_a_call_after_many_separators() -> None:
    args = {"q": DS_SEP * 500}
    text = (
        DS_CALLS_BEGIN
        + DS_CALL_BEGIN
        + "function"
        + DS_SEP
        + "f\n```json\n"
        + json.dumps(args)
        + "\n```"
        + DS_CALL_END
    )
    parsed = parse_function_call("deepseek_v3", text, None)
    assert [(c["name"], json.loads(c["arguments"])) for c in parsed.calls] == [("f", args)]


def _old_suffix(head: CallHead, text: str, start: int, closing: bool) -> int:
    """The regexes `held`/`closed` replaced (quadratic with `.search`), for reference."""

    def alt(words: list[str]) -> str:
        return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))

    tag = alt([head.end[:k] for k in range(1, len(head.end))])
    wrap = re.escape(head.wrapper)
    if head.wrapper:
        partial = alt([head.wrapper[:k] for k in range(1, len(head.wrapper))])
        held = rf"\s*(?:{wrap}\s*(?:{tag})?|{partial or '(?!)'}|{tag})?\Z"
        close = rf"\s*(?:{wrap}\s*)?\Z"
    else:
        held, close = rf"\s*(?:{tag})?\Z", r"\s*\Z"
    match = re.compile(close if closing else held).search(text, start)
    return match.start() if match else len(text)


@pytest.mark.parametrize("head", [QWEN_HEAD, DS_HEAD, KIMI_HEAD], ids=["qwen", "ds", "kimi"])
def test_the_backward_scan_finds_what_the_regex_found(head: CallHead) -> None:
    pieces = [" ", "\n", "x", "}", "`", head.end[:2], head.end[: len(head.end) // 2], head.end]
    rng = random.Random(38)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        start = rng.randrange(len(text) + 1)
        assert head.held(text, start) == _old_suffix(head, text, start, closing=False), text
        assert len(head.closed(text)) == _old_suffix(head, text, 0, closing=True), text


@pytest.mark.timeout(20)
def test_a_client_pattern_is_never_run() -> None:
    # ReDoS: "^(a+)+$" on 40 a's and a "!" doubled its time per character (26: 15 s).
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "string"}},
        "additionalProperties": False,
    }
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    args = {"a": "a" * 40 + "!", "b" * 40 + "!": 1}
    text = f'<tool_call>{{"name": "f", "arguments": {json.dumps(args)}}}</tool_call>'
    parsed = parse_function_call("qwen25", text, tools)
    assert [json.loads(c["arguments"]) for c in parsed.calls] == [args]


def test_other_keywords_still_check_arguments() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    text = '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'
    parsed = parse_function_call("qwen25", text, tools)
    assert parsed.calls == [] and "schema of f" in parsed.invalid_calls[0].reason


@pytest.mark.timeout(30)
def test_a_whitespace_run_streams_one_character_at_a_time_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each feed read the whole held run again (44 s for 20K spaces); now a bounded tail.
    text = '<tool_call>{"name":"f","arguments":{' + " " * N + "x}}</tool_call>"
    read = count_reads(monkeypatch)
    parser = tool_parser("qwen25", None)
    deltas = [parser.feed(c) for c in text] + [parser.finish()]
    assert collect(deltas)[1][0]["arguments"] == "{" + " " * N + "x}"
    assert read[0] < 2 * QWEN_HEAD.held_limit * len(text)  # quadratic: ~N / 2 per character


def _upto(end: str) -> str:
    return f"(?:(?!{re.escape(end)}).)*?"


# The regexes the headless fallbacks replaced (quadratic or worse), for reference.
OLD_FALLBACKS = {
    "qwen25": re.compile(rf"<tool_call>\s*({_upto('</tool_call>')})\s*</tool_call>", re.DOTALL),
    "deepseek_v3": re.compile(
        re.escape(DS_CALL_BEGIN)
        + f"({_upto(DS_CALL_END)})"
        + re.escape(DS_SEP)
        + f"({_upto(DS_CALL_END)})\n```json\n({_upto(DS_CALL_END)})\n```"
        + re.escape(DS_CALL_END),
        re.DOTALL,
    ),
    "kimi_k2": re.compile(
        r"<\|tool_call_begin\|>\s*(?P<id>[\w.\-]{1,256}:\d{1,9})\s*<\|tool_call_argument_begin\|>"
        rf"\s*(?P<args>\{{{_upto('<|tool_call_end|>')}\}})\s*<\|tool_call_end\|>",
        re.DOTALL,
    ),
}
NEW_FALLBACKS = {
    "qwen25": lambda block: tagged_block(block, "<tool_call>", tool_formats._qwen_call),
    "deepseek_v3": lambda block: tagged_block(block, DS_CALL_BEGIN, tool_formats._dsv3_call),
    "kimi_k2": lambda block: tagged_block(
        block, "<|tool_call_begin|>", tool_formats._kimi_call, tool_formats._KIMI_OPEN.pattern
    ),
}
FALLBACK_PIECES = {
    "qwen25": ["<tool_call>", " ", '{"name": "f", "arguments": {}}', "x", "{", "</tool_call>"],
    "deepseek_v3": [DS_CALL_BEGIN, DS_SEP, "f", "\n```json\n", "{}", "\n```", " ", DS_CALL_END],
    "kimi_k2": [
        "<|tool_call_begin|>",
        "f:1",
        "<|tool_call_argument_begin|>",
        "{}",
        "}",
        " ",
        "<|tool_call_end|>",
    ],
}


@pytest.mark.parametrize("parser", sorted(OLD_FALLBACKS))
def test_the_headless_fallback_finds_the_calls_the_regex_found(parser: str) -> None:
    # A block holds one end tag, at its end (read_blocks cuts the text so).
    *pieces, end = FALLBACK_PIECES[parser]
    rng = random.Random(13)
    for _ in range(2000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randrange(7)))
        block = body + end
        old = OLD_FALLBACKS[parser].search(block)
        got = [p for p in NEW_FALLBACKS[parser](block) if isinstance(p, ToolCall)]
        if old is None or not _old_call_ok(parser, old):
            assert got == [], block
        else:
            assert [c.raw for c in got] == [old.group(0)], block


def _old_call_ok(parser: str, match: re.Match[str]) -> bool:
    """Whether the old reader made a call of the match (its JSON an object)."""
    text = {"qwen25": 1, "deepseek_v3": 3, "kimi_k2": "args"}[parser]
    try:
        value = json.loads(match.group(text))
    except ValueError:
        return False
    if parser == "qwen25":
        return isinstance(value, dict) and isinstance(value.get("name"), str)
    return isinstance(value, dict)
