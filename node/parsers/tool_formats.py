"""The tool-call section formats, one tail parser each.

Formats are checked against SGLang's `srt/function_call/*_detector.py`
(base_json_detector, qwen25, llama32, mistral, deepseekv3, pythonic, kimik2).
A tail parser gets the text from the section's start to the end of output and
returns (normal_text, calls); anything it cannot read stays normal text.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

from node.parsers.tool_calls import ToolCall, ToolFormat, dump_arguments

_DECODER = json.JSONDecoder()


def call_from_object(obj: Any) -> ToolCall | None:
    """`{name, arguments | parameters}` -> a call; SGLang reads both keys."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("parameters", obj.get("arguments", {}))
    if isinstance(args, str):
        args = json.loads(args)
    if not isinstance(args, dict):
        return None
    return ToolCall(obj["name"], dump_arguments(args))


def json_values(text: str, separator: str = "") -> tuple[list[Any], str]:
    """Decode JSON values one after another (with `separator` between); rest unread."""
    values, pos = [], 0
    while True:
        rest = text[pos:].lstrip()
        if values and separator:
            if not rest.startswith(separator):
                break
            rest = rest[len(separator) :].lstrip()
        try:
            value, used = _DECODER.raw_decode(rest)
        except ValueError:
            break
        values.append(value)
        pos = len(text) - len(rest) + used
        if not separator:
            break
    return values, text[pos:] if values else text


def calls_or_text(tail: str, objects: list[Any], rest: str) -> tuple[str, list[ToolCall]]:
    calls = [call_from_object(o) for o in objects]
    if not calls or None in calls:
        return tail, []
    return rest.strip(), [c for c in calls if c is not None]


def parse_json(tail: str) -> tuple[str, list[ToolCall]]:
    # base_json_detector: a bare object, or a list of them.
    values, rest = json_values(tail)
    if not values:
        return tail, []
    objects = values[0] if isinstance(values[0], list) else values
    return calls_or_text(tail, objects, rest)


def parse_llama3(tail: str) -> tuple[str, list[ToolCall]]:
    # llama32_detector: optional <|python_tag|>, then objects joined by ';'.
    body = tail.lstrip().removeprefix("<|python_tag|>")
    values, rest = json_values(body, separator=";")
    return calls_or_text(tail, values, rest)


def parse_mistral(tail: str) -> tuple[str, list[ToolCall]]:
    # mistral_detector: [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]
    values, rest = json_values(tail.removeprefix("[TOOL_CALLS]"))
    if not values or not isinstance(values[0], list):
        return tail, []
    return calls_or_text(tail, values[0], rest)


def tagged_blocks(
    tail: str,
    block: re.Pattern[str],
    make: Callable[[re.Match[str]], ToolCall | None],
    noise: tuple[str, ...],
) -> tuple[str, list[ToolCall]]:
    """Calls from each complete block; malformed blocks and gaps stay normal text."""
    calls, normal, pos = [], [], 0
    for match in block.finditer(tail):
        normal.append(tail[pos : match.start()])
        pos = match.end()
        try:
            call = make(match)
        except ValueError:
            call = None
        if call is None:
            normal.append(match.group(0))
        else:
            calls.append(call)
    normal.append(tail[pos:])
    if not calls:
        return tail, []
    text = "".join(normal)
    for token in noise:
        text = text.replace(token, "")
    return text.strip(), calls


def upto(end: str) -> str:
    """A lazy run that cannot cross `end`, so no call's match spans another's end tag."""
    return f"(?:(?!{re.escape(end)}).)*?"


QWEN_END = "</tool_call>"
_QWEN = re.compile(rf"<tool_call>\s*({upto(QWEN_END)})\s*</tool_call>", re.DOTALL)


def parse_qwen25(tail: str) -> tuple[str, list[ToolCall]]:
    # qwen25_detector: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated.
    return tagged_blocks(tail, _QWEN, lambda m: call_from_object(json.loads(m.group(1))), ())


def ds_token(words: str) -> str:
    """DeepSeek's special tokens use a fullwidth bar and U+2581 between words."""
    return "<\uff5c" + words.replace(" ", "\u2581") + "\uff5c>"


DS_CALLS_BEGIN, DS_CALLS_END = ds_token("tool calls begin"), ds_token("tool calls end")
DS_CALL_END = ds_token("tool call end")
_DS_ANY = upto(DS_CALL_END)
_DSV3 = re.compile(
    re.escape(ds_token("tool call begin"))
    + f"({_DS_ANY})"
    + re.escape(ds_token("tool sep"))
    + f"({_DS_ANY})\n```json\n({_DS_ANY})\n```"
    + re.escape(DS_CALL_END),
    re.DOTALL,
)


def _dsv3_call(match: re.Match[str]) -> ToolCall | None:
    args = json.loads(match.group(3))
    if not isinstance(args, dict):
        return None
    return ToolCall(match.group(2).strip(), dump_arguments(args))


def parse_deepseek_v3(tail: str) -> tuple[str, list[ToolCall]]:
    # deepseekv3_detector: calls begin, then per call: call begin, "function", tool sep,
    # NAME, a ```json fence holding the arguments, call end; then calls end.
    return tagged_blocks(tail, _DSV3, _dsv3_call, (DS_CALLS_BEGIN, DS_CALLS_END))


KIMI_END = "<|tool_call_end|>"
_KIMI = re.compile(
    r"<\|tool_call_begin\|>\s*(?P<id>[\w.\-]+:\d+)\s*<\|tool_call_argument_begin\|>\s*"
    rf"(?P<args>\{{{upto(KIMI_END)}\}})\s*<\|tool_call_end\|>",
    re.DOTALL,
)


def _kimi_call(match: re.Match[str]) -> ToolCall | None:
    args = json.loads(match.group("args"))
    if not isinstance(args, dict):
        return None
    call_id = match.group("id")
    name = call_id.rsplit(":", 1)[0].removeprefix("functions.")
    return ToolCall(name, dump_arguments(args), id=call_id)  # Kimi's own id, as SGLang keeps it


def parse_kimi_k2(tail: str) -> tuple[str, list[ToolCall]]:
    # kimik2_detector: functions.NAME:IDX<|tool_call_argument_begin|>{...} in call tags.
    section = ("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>")
    return tagged_blocks(tail, _KIMI, _kimi_call, section)


def parse_pythonic(tail: str) -> tuple[str, list[ToolCall]]:
    # pythonic_detector: [f(a=1, b="x"), g()]; keyword literals only, never evaluated.
    tree = ast.parse(tail.strip(), mode="eval").body
    if not isinstance(tree, ast.List) or not tree.elts:
        return tail, []
    calls = []
    for node in tree.elts:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
            return tail, []
        if any(kw.arg is None for kw in node.keywords):
            return tail, []
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        calls.append(ToolCall(node.func.id, dump_arguments(args)))
    return "", calls


FORMATS: dict[str, ToolFormat] = {
    "json": ToolFormat(markers=(), leading=("{", "["), parse_tail=parse_json),
    "qwen25": ToolFormat(markers=("<tool_call>",), parse_tail=parse_qwen25, block_end=QWEN_END),
    "llama3": ToolFormat(markers=("<|python_tag|>",), leading=("{",), parse_tail=parse_llama3),
    "mistral": ToolFormat(markers=("[TOOL_CALLS]",), parse_tail=parse_mistral),
    "deepseek_v3": ToolFormat(
        markers=(DS_CALLS_BEGIN,), parse_tail=parse_deepseek_v3, block_end=DS_CALL_END
    ),
    "pythonic": ToolFormat(markers=(), leading=("[",), parse_tail=parse_pythonic),
    "kimi_k2": ToolFormat(
        markers=("<|tool_calls_section_begin|>",), parse_tail=parse_kimi_k2, block_end=KIMI_END
    ),
}
