"""`/parse/function_call` and `/parse/reasoning` on a real node: answers, and every bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from node.parsers.registry import REASONING_PARSERS, TOOL_PARSERS
from node.parsers.tool_rules import MAX_TOOLS
from tests.integration.conftest import Cluster
from tests.support import strong

KEY = strong("parse-client")
AUTH = {"Authorization": f"Bearer {KEY}"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
    {"type": "function", "function": {"name": "search"}},
]


def qwen(name: str, args: Any) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(args)}}}\n</tool_call>'


@pytest.fixture(scope="module")
def url(module_cluster: Cluster) -> Iterator[str]:
    yield module_cluster.node("--api-key", KEY, ready=False).url


def post(url: str, path: str, body: Any, headers: dict[str, str] = AUTH) -> requests.Response:
    return requests.post(url + path, json=body, headers=headers, timeout=10)


def test_function_call_in_sglang_and_openai_shapes(url: str) -> None:
    text = "Checking. " + qwen("get_weather", {"city": "Oslo"}) + qwen("search", {"q": 1})
    body = {"text": text, "tool_call_parser": "qwen25", "tools": TOOLS}
    resp = post(url, "/parse/function_call", body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["normal_text"] == "Checking. "
    assert [(c["tool_index"], c["name"]) for c in got["calls"]] == [
        (0, "get_weather"),
        (1, "search"),
    ]
    assert [json.loads(c["parameters"]) for c in got["calls"]] == [{"city": "Oslo"}, {"q": 1}]
    assert all(c["arguments"] == c["parameters"] for c in got["calls"])
    assert "invalid_calls" not in got


def test_the_seed_example_with_empty_tools(url: str) -> None:
    text = '{"name":"get_weather","arguments":{"city":"SF"}}'
    got = post(url, "/parse/function_call", {"text": text, "tool_call_parser": "json", "tools": []})
    assert got.json()["calls"][0]["name"] == "get_weather"
    assert json.loads(got.json()["calls"][0]["parameters"]) == {"city": "SF"}


def test_refused_calls_stay_text_and_are_listed(url: str) -> None:
    bad = qwen("get_weather", {"town": "Oslo"})
    body = {"text": bad, "tool_call_parser": "qwen25", "tools": TOOLS}
    got = post(url, "/parse/function_call", body).json()
    assert (got["normal_text"], got["calls"]) == (bad, [])
    [refused] = got["invalid_calls"]
    assert refused["name"] == "get_weather" and "'city' is a required property" in refused["reason"]


def test_tool_choice_none_and_named(url: str) -> None:
    text = qwen("search", {"q": 1}) + qwen("get_weather", {"city": "Oslo"})
    body = {"text": text, "tool_call_parser": "qwen25", "tools": TOOLS, "tool_choice": "none"}
    assert post(url, "/parse/function_call", body).json() == {"normal_text": text, "calls": []}
    body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    got = post(url, "/parse/function_call", body).json()
    assert [c["name"] for c in got["calls"]] == ["get_weather"]
    assert got["normal_text"] == qwen("search", {"q": 1})


def test_reasoning(url: str) -> None:
    body = {"text": "<think>internal</think>answer", "reasoning_parser": "deepseek_r1"}
    resp = post(url, "/parse/reasoning", body)
    assert resp.json() == {"normal_text": "answer", "reasoning_text": "internal"}


BIG = "x" * (512 * 1024 + 1)
BAD: list[tuple[str, Any, str | None, str]] = [
    (
        "/parse/function_call",
        {"text": "x", "tool_call_parser": "nope"},
        "tool_call_parser",
        "qwen25",
    ),
    ("/parse/reasoning", {"text": "x", "reasoning_parser": "nope"}, "reasoning_parser", "qwen3"),
    ("/parse/function_call", {"tool_call_parser": "json"}, "text", "required"),
    ("/parse/reasoning", {"text": 5, "reasoning_parser": "qwen3"}, "text", "str"),
    ("/parse/reasoning", {"text": BIG, "reasoning_parser": "qwen3"}, "text", "524288"),
    (
        "/parse/reasoning",
        {"text": "x", "reasoning_parser": "qwen3", "extra": 1},
        "extra",
        "allowed",
    ),
    (
        "/parse/function_call",
        {"text": "x", "tool_call_parser": "json", "tools": [{}] * (MAX_TOOLS + 1)},
        "tools",
        str(MAX_TOOLS),
    ),
    (
        "/parse/function_call",
        {"text": "x", "tool_call_parser": "json", "tools": [{"type": "function"}]},
        "tools",
        "tools[0] must be",
    ),
    (
        "/parse/function_call",
        {
            "text": "x",
            "tool_call_parser": "json",
            "tools": [{"name": "f", "parameters": {"type": 3}}],
        },
        "tools",
        "not a valid JSON schema",
    ),
    (
        "/parse/function_call",
        {"text": "x", "tool_call_parser": "json", "tools": TOOLS, "tool_choice": "always"},
        "tool_choice",
        "tool_choice must be",
    ),
    (
        "/parse/function_call",
        {
            "text": "x",
            "tool_call_parser": "json",
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
        "tool_choice",
        "not in tools",
    ),
]


@pytest.mark.parametrize(("path", "body", "param", "says"), BAD)
def test_bad_input_is_a_400_naming_the_field(
    url: str, path: str, body: Any, param: str | None, says: str
) -> None:
    resp = post(url, path, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and says in error["message"]


def test_unknown_parser_lists_the_known_ones(url: str) -> None:
    for path, field, names in (
        ("/parse/function_call", "tool_call_parser", TOOL_PARSERS),
        ("/parse/reasoning", "reasoning_parser", REASONING_PARSERS),
    ):
        message = post(url, path, {"text": "x", field: "nope"}).json()["error"]["message"]
        assert all(name in message for name in names)


def test_not_json_too_large_and_no_credential(url: str) -> None:
    resp = requests.post(url + "/parse/reasoning", data=b"{", headers=AUTH, timeout=10)
    assert resp.status_code == 400
    huge = {"text": "x" * (1024 * 1024), "reasoning_parser": "qwen3"}
    assert post(url, "/parse/reasoning", huge).status_code == 413
    assert post(url, "/parse/reasoning", {"text": "x"}, headers={}).status_code == 401
