"""Reasoning parsers: golden outputs per model family, and streaming equals whole."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.parsers.registry import (
    REASONING_PARSERS,
    UnknownParser,
    parse_reasoning,
    reasoning_parser,
)
from tests.chunkings import chunkings, texts_made_of

GOLDEN = [
    # DeepSeek-R1: the template already opened the block, so output starts inside it.
    (
        "deepseek_r1",
        "Let me think.\nOK.\n</think>\n\nThe answer is 4.",
        "Let me think.\nOK.",
        "The answer is 4.",
    ),
    ("deepseek_r1", "<think>\nsteps\n</think>\n\n4", "steps", "4"),
    ("deepseek_r1", "still thinking, cut off", "still thinking, cut off", ""),
    ("qwen3", "<think>\nUser greets.\n</think>\n\nHello!", "User greets.", "Hello!"),
    ("qwen3", "Hello, no thinking here.", "", "Hello, no thinking here."),
    ("qwen3", "<think>\nunfinished", "unfinished", ""),
    ("qwen3", "Use <think> tags like so.", "", "Use <think> tags like so."),
    ("glm45", "<think>plan</think>Done.", "plan", "Done."),
    ("glm45", "<think></think>\nDirect answer", "", "Direct answer"),
    ("kimi", "◁think▷Consider 2+2.◁/think▷It is 4.", "Consider 2+2.", "It is 4."),
    ("kimi", "No block.", "", "No block."),
    ("qwen3", "<think>a</thin", "a</thin", ""),
    ("qwen3", "<thi", "", "<thi"),
]


def stream(name: str, chunks: list[str]) -> tuple[str, str]:
    parser = reasoning_parser(name)
    deltas = [parser.feed(c) for c in chunks] + [parser.finish()]
    return "".join(d.reasoning for d in deltas), "".join(d.content for d in deltas)


@pytest.mark.parametrize(("name", "text", "reasoning", "content"), GOLDEN)
def test_golden_whole(name: str, text: str, reasoning: str, content: str) -> None:
    assert parse_reasoning(name, text) == (reasoning, content)


@pytest.mark.parametrize(("name", "text", "reasoning", "content"), GOLDEN)
def test_streaming_matches_whole(name: str, text: str, reasoning: str, content: str) -> None:
    for i, chunks in enumerate(chunkings(text, seed=len(text))):
        assert stream(name, chunks) == (reasoning, content), (i, chunks)


@pytest.mark.parametrize(("name", "text", "reasoning", "content"), GOLDEN)
def test_unstreamed_reasoning_comes_in_one_delta(
    name: str, text: str, reasoning: str, content: str
) -> None:
    for chunks in chunkings(text, seed=len(text)):
        parser = reasoning_parser(name, stream_reasoning=False)
        deltas = [parser.feed(c) for c in chunks] + [parser.finish()]
        sent = [d.reasoning for d in deltas if d.reasoning]
        assert sent == ([reasoning] if reasoning else [])
        assert "".join(d.content for d in deltas) == content


def test_unstreamed_reasoning_goes_when_the_block_closes() -> None:
    parser = reasoning_parser("qwen3", stream_reasoning=False)
    seen = [parser.feed("<think>a"), parser.feed(" b</think>"), parser.feed("c"), parser.finish()]
    assert [(d.reasoning, d.content) for d in seen] == [("", ""), ("a b", ""), ("", "c"), ("", "")]


def test_partial_close_tag_is_never_content() -> None:
    parser = reasoning_parser("qwen3")
    seen = [parser.feed("<think>abc</thi"), parser.feed("nk>done"), parser.finish()]
    assert [(d.reasoning, d.content) for d in seen] == [("abc", ""), ("", "done"), ("", "")]


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownParser) as err:
        reasoning_parser("nope")
    for name in REASONING_PARSERS:
        assert name in str(err.value)


texts = texts_made_of(
    ["<think>", "</think>", "◁think▷", "◁/think▷", "<th", "</", " ", "\n", "x", "é"]
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(REASONING_PARSERS)), text=texts, seed=st.integers(0, 1000))
def test_arbitrary_text_never_raises_and_chunking_is_invariant(
    name: str, text: str, seed: int
) -> None:
    whole = parse_reasoning(name, text)
    for chunks in chunkings(text, seed):
        assert stream(name, chunks) == whole
