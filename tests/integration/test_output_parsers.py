"""The official `openai` client gets `reasoning_content` and `tool_calls` from echo workers that
emit raw think-tag and tool-call text, parsed by the gateway (streaming and not).

One node, three echo workers, each serving its own model:
- `own`: registered with its own `reasoning_parser: deepseek_r1` and `tool_parser: qwen25`,
  which beat the node's entries for its model (`own=qwen3`, `own=llama3`);
- `flagged`: no fields; the node's entries `flagged=deepseek_r1` and `flagged=qwen25`
  beat the node's default tool parser;
- `plain`: nothing but the node's default tool parser, `llama3`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from tests.integration.conftest import Cluster
from tests.support import wait_for

CALL = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
QWEN_REPLY = f"<think>Is it cold?</think>Let me check.<tool_call>{CALL}</tool_call>"
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def gateway(module_cluster: Cluster) -> Iterator[str]:
    _, own = module_cluster.echo(model="own")
    _, flagged = module_cluster.echo(model="flagged")
    _, plain = module_cluster.echo("--reply-text", '{"name": "f", "parameters": {}}', model="plain")
    node = module_cluster.node(
        "--worker-urls",
        flagged,
        plain,
        "--tool-call-parser",
        "llama3,flagged=qwen25,own=llama3",
        "--reasoning-parser",
        "flagged=deepseek_r1,own=qwen3",
    )
    fields = {"url": own, "reasoning_parser": "deepseek_r1", "tool_parser": "qwen25"}
    added = requests.post(node.url + "/workers", json=fields, timeout=5)
    assert added.status_code == 202, added.text
    worker = f"{node.url}/workers/{added.json()['worker_id']}"
    wait_for(lambda: requests.get(worker, timeout=5).json()["status"] == "ready", what="own")
    yield node.url


@pytest.fixture(scope="module")
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def chat(client: openai.OpenAI, model: str, reply: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, extra_body={"echo_reply": reply, **extra}
    )


def assert_weather_call(calls: Any) -> None:
    [call] = calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_a_whole_answer_gets_reasoning_and_tool_calls(client: openai.OpenAI) -> None:
    reply = chat(client, "own", QWEN_REPLY)
    choice = reply.choices[0]
    assert choice.message.model_extra["reasoning_content"] == "Is it cold?"
    assert choice.message.content == "Let me check."
    assert_weather_call(choice.message.tool_calls)
    assert choice.finish_reason == "tool_calls"
    assert reply.usage.completion_tokens > 0  # usage as the worker reported it
    # The worker's own deepseek_r1 (an implicit open tag) beats its model's entry, qwen3.
    implicit = chat(client, "own", "Is it cold?</think>Yes.").choices[0].message
    assert implicit.model_extra["reasoning_content"] == "Is it cold?"
    assert implicit.content == "Yes." and implicit.tool_calls is None


def test_streams_give_the_same_through_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="own",
        messages=ASK,
        tools=TOOLS,
        n=2,
        stream=True,
        extra_body={"echo_reply": QWEN_REPLY},
    )
    got: dict[int, dict[str, Any]] = {}
    for chunk in stream:
        for choice in chunk.choices:
            acc = got.setdefault(choice.index, {"reasoning": [], "content": "", "calls": {}})
            delta = choice.delta
            if (thought := getattr(delta, "reasoning_content", None)) is not None:
                acc["reasoning"].append(thought)
            acc["content"] += delta.content or ""
            for piece in delta.tool_calls or []:
                call = acc["calls"].setdefault(piece.index, {"name": "", "arguments": ""})
                call["name"] += piece.function.name or ""
                call["arguments"] += piece.function.arguments or ""
            acc["finish"] = choice.finish_reason or acc.get("finish")
    assert sorted(got) == [0, 1]  # one parser state per choice
    for acc in got.values():
        assert "".join(acc["reasoning"]) == "Is it cold?" and len(acc["reasoning"]) > 1
        assert acc["content"] == "Let me check." and acc["finish"] == "tool_calls"
        [call] = acc["calls"].values()
        assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}

    with client.chat.completions.stream(
        model="own",
        messages=ASK,
        tools=TOOLS,
        extra_body={"echo_reply": QWEN_REPLY, "stream_reasoning": False},
    ) as helper:
        thoughts = [
            e.chunk.choices[0].delta.model_extra.get("reasoning_content")
            for e in helper
            if e.type == "chunk" and e.chunk.choices
        ]
        final = helper.get_final_completion()
    assert [t for t in thoughts if t] == ["Is it cold?"]  # stream_reasoning: false, one piece
    assert_weather_call(final.choices[0].message.tool_calls)
    assert final.choices[0].finish_reason == "tool_calls"


def test_a_model_entry_beats_the_node_default(client: openai.OpenAI) -> None:
    flagged = chat(client, "flagged", QWEN_REPLY).choices[0]
    assert flagged.message.model_extra["reasoning_content"] == "Is it cold?"
    assert_weather_call(flagged.message.tool_calls)
    plain = client.chat.completions.create(model="plain", messages=ASK).choices[0]
    [call] = plain.message.tool_calls  # the default, llama3, from the worker's --reply-text
    assert call.function.name == "f" and plain.finish_reason == "tool_calls"
    assert plain.message.model_extra.get("reasoning_content") is None  # no reasoning parser


def test_request_options_switch_parsing_off(client: openai.OpenAI) -> None:
    message = chat(client, "own", QWEN_REPLY, tool_choice="none").choices[0].message
    assert message.tool_calls is None
    assert message.content == f"Let me check.<tool_call>{CALL}</tool_call>"
    assert message.model_extra["reasoning_content"] == "Is it cold?"
    message = chat(client, "own", QWEN_REPLY, separate_reasoning=False).choices[0].message
    assert message.content == "<think>Is it cold?</think>Let me check."
    assert "reasoning_content" not in message.model_extra
    assert_weather_call(message.tool_calls)
    bad = requests.post(
        client.base_url.join("chat/completions").__str__(),
        json={"model": "own", "messages": ASK, "separate_reasoning": "yes"},
        timeout=5,
    )
    assert bad.status_code == 400 and "separate_reasoning" in bad.json()["error"]["message"]


def test_an_answer_the_worker_structured_is_left_alone(client: openai.OpenAI) -> None:
    raw = "<think>not mine</think>kept"
    reply = chat(client, "flagged", raw, echo_reasoning="the worker's own")
    message = reply.choices[0].message
    assert message.model_extra["reasoning_content"] == "the worker's own"
    assert message.content == raw and message.tool_calls is None
    stream = client.chat.completions.create(
        model="flagged",
        messages=ASK,
        stream=True,
        extra_body={"echo_reply": raw, "echo_reasoning": "the worker's own"},
    )
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert content == raw


def test_the_node_parsers_change_at_runtime(gateway: str, client: openai.OpenAI) -> None:
    bad = requests.put(gateway + "/admin/config", json={"tool_call_parser": "nope"}, timeout=5)
    assert bad.status_code == 400 and "qwen25" in bad.json()["error"]["message"]
    change = {"reasoning_parser": ["deepseek_r1"]}  # a default for every model
    assert requests.put(gateway + "/admin/config", json=change, timeout=5).status_code == 200

    def thought() -> Any:
        reply = client.chat.completions.create(
            model="plain", messages=ASK, extra_body={"echo_reply": "hm</think>ok"}
        )
        return reply.choices[0].message.model_extra.get("reasoning_content")

    wait_for(lambda: thought() == "hm", what="the runtime reasoning parser")
