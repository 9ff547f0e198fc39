"""The parser utilities (seeds 000, 001): `POST /parse/function_call`, `POST /parse/reasoning`.

They run the same parsers the proxy applies to a worker's output (`node.parsers`)
on a text the caller sends, and change nothing. Like inference, they pass the
rate limits, quotas and admission (`admitted`), and parse in the CPU pool. SGLang's shapes: a call's
`parameters` is the JSON text of its arguments; `arguments` carries the same
text, as OpenAI names it, so either client reads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from aiohttp import web
from msgspec import Meta

from node.api.admitted import admitted
from node.api.bodies import Body, read_body
from node.api.common import json_response
from node.api.table import Audience, Route
from node.api.workers import ReasoningParser, ToolParser
from node.auth import Principal
from node.cpu_pool import run_cpu
from node.errors import ApiError
from node.parsers.registry import parse_function_call, parse_reasoning
from node.parsers.tool_rules import MAX_TOOLS, check_tools

MAX_TEXT: Final = 512 * 1024  # characters; the whole body is at most 1 MiB

Text = Annotated[
    str, Meta(max_length=MAX_TEXT, description=f"the model's output, at most {MAX_TEXT} characters")
]
Tools = Annotated[
    list[dict[str, Any]],
    Meta(
        max_length=MAX_TOOLS,
        description=f"OpenAI tool definitions, at most {MAX_TOOLS}; calls to other names are "
        "dropped, and a tool's parameters schema checks its calls' arguments",
    ),
]
ToolChoice = Annotated[
    str | dict[str, Any],
    Meta(
        description='"none", "auto" (the default), "required" or '
        '{"type": "function", "function": {"name": ...}}'
    ),
]


class FunctionCallBody(Body):
    text: Text
    tool_call_parser: ToolParser
    tools: Tools | None = None
    tool_choice: ToolChoice | None = None


class ReasoningBody(Body):
    text: Text
    reasoning_parser: ReasoningParser


def _tool_index(tools: list[dict[str, Any]], name: str) -> int:
    """Where the called function is in `tools` (SGLang's tool_index), -1 if absent."""
    for i, tool in enumerate(tools):
        function = tool.get("function", tool)
        if isinstance(function, dict) and function.get("name") == name:
            return i
    return -1


async def function_call(request: web.Request, principal: Principal) -> web.Response:
    body = await read_body(request, FunctionCallBody)
    problem = check_tools(body.tools, body.tool_choice)
    if problem:
        param = "tool_choice" if problem.startswith("tool_choice") else "tools"
        raise ApiError(400, problem, param=param)
    parsed = await run_cpu(
        lambda: parse_function_call(
            body.tool_call_parser, body.text, body.tools, tool_choice=body.tool_choice
        )
    )
    answer: dict[str, Any] = {
        "normal_text": parsed.normal_text,
        "calls": [
            {
                "tool_index": _tool_index(body.tools or [], call["name"]),
                "name": call["name"],
                "parameters": call["arguments"],
                "arguments": call["arguments"],
            }
            for call in parsed.calls
        ],
    }
    if parsed.invalid_calls:
        answer["invalid_calls"] = [
            {"name": c.name, "arguments": c.arguments, "reason": c.reason, "emitted": c.emitted}
            for c in parsed.invalid_calls
        ]
    return json_response(answer)


async def reasoning(request: web.Request, principal: Principal) -> web.Response:
    body = await read_body(request, ReasoningBody)
    reasoning_text, normal_text = await run_cpu(
        lambda: parse_reasoning(body.reasoning_parser, body.text)
    )
    return json_response({"normal_text": normal_text, "reasoning_text": reasoning_text})


ROUTES = (
    Route(
        "POST",
        "/parse/function_call",
        admitted(function_call),
        Audience.PROTECTED,
        "parseFunctionCall",
        "inference",
        "Split a model's output into normal text and tool calls",
        answers={
            200: "normal_text, calls [{tool_index, name, parameters, arguments}] (parameters "
            "and arguments: the same JSON text), and invalid_calls [{name, arguments, reason, "
            "emitted}] when some were refused"
        },
        body=FunctionCallBody,
        description="400 names the field: an unknown parser (the message lists the known "
        "ones), tools that cannot be used, a tool_choice naming no tool.",
    ),
    Route(
        "POST",
        "/parse/reasoning",
        admitted(reasoning),
        Audience.PROTECTED,
        "parseReasoning",
        "inference",
        "Split a model's output into reasoning and normal text",
        answers={200: "normal_text, reasoning_text"},
        body=ReasoningBody,
        description="400 names the field; an unknown parser's message lists the known ones.",
    ),
)
