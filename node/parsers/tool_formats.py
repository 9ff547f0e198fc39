"""The tool-call section formats, one tail parser each.

Formats are checked against SGLang's `srt/function_call/*_detector.py`
(base_json_detector, qwen25, llama32, mistral, deepseekv3, pythonic, kimik2).
A tail parser gets the text from the section's start to the end of output and
returns its normal text and calls in order (`Piece`s), each call with its own
text (`raw`); anything it cannot read stays normal text.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from typing import Any

from node.parsers.call_blocks import CallHead, S, read_blocks
from node.parsers.calls import Piece, ToolCall
from node.parsers.json_calls import JsonHead, read_json_calls
from node.parsers.tool_calls import ToolFormat, dump_arguments

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


def call_from_object(obj: Any, raw: str = "") -> ToolCall | None:
    """`{name, arguments | parameters}` -> a call; SGLang reads both keys."""
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("parameters", obj.get("arguments", {}))
    if isinstance(args, str):
        args = json.loads(args)
    if not isinstance(args, dict):
        return None
    return ToolCall(obj["name"], dump_arguments(args), raw=raw)


def skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def json_values(text: str, separator: str = "") -> tuple[list[tuple[Any, str]], str]:
    """Decode JSON values one after another (with `separator` between), each with its
    own text; the rest unread."""
    values: list[tuple[Any, str]] = []
    pos = 0
    while True:
        at = skip_space(text, pos)
        if values and separator:
            if not text.startswith(separator, at):
                break
            at = skip_space(text, at + len(separator))
        try:
            value, end = _DECODER.raw_decode(text, at)
        except ValueError:
            break
        values.append((value, text[at:end]))
        pos = end
        if not separator:
            break
    return values, text[pos:] if values else text


def json_array(text: str) -> tuple[list[tuple[Any, str]], str] | None:
    """A JSON array read item by item, each with its own text, and the rest; None if the
    text does not start with one."""
    pos = skip_space(text, 0)
    if not text.startswith("[", pos):
        return None
    items: list[tuple[Any, str]] = []
    pos = skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return items, text[pos + 1 :]
    while True:
        value, end = _DECODER.raw_decode(text, pos)
        items.append((value, text[pos:end]))
        pos = skip_space(text, end)
        if text.startswith("]", pos):
            return items, text[pos + 1 :]
        if not text.startswith(",", pos):
            raise ValueError("not a JSON array")
        pos = skip_space(text, pos + 1)


def calls_or_text(tail: str, objects: list[tuple[Any, str]], rest: str) -> list[Piece]:
    """Every object a call, or the whole tail stays text."""
    calls = [call_from_object(value, raw) for value, raw in objects]
    if not calls or None in calls:
        return [tail]
    pieces: list[Piece] = []
    for call in filter(None, calls):
        pieces += ["\n", call] if pieces else [call]
    return [*pieces, rest]


_JSON_STRING = r'"(?:[^"\\\n]|\\.){0,256}"'
_OBJECT_HEAD = (
    rf'\{{{S}"name"{S}:{S}(?P<name>{_JSON_STRING}){S},{S}"(?:arguments|parameters)"{S}:{S}(?=\{{)'
)
_AFTER_CALL = rf"(?:\}}{S})?"  # the previous call object's closing brace


def _json_name(match: re.Match[str]) -> str:
    return str(json.loads(match["name"]))


JSON_HEAD = JsonHead(
    re.compile(rf"(?P<lead>{S}{_AFTER_CALL}(?:[\[,]{S})?){_OBJECT_HEAD}"),
    closing=re.compile(rf"{S}\}}?{S}\]?"),
    name_of=_json_name,
)
LLAMA3_HEAD = JsonHead(
    re.compile(rf"(?P<lead>{S}(?:<\|python_tag\|>{S})?{_AFTER_CALL}(?:;{S})?){_OBJECT_HEAD}"),
    closing=re.compile(rf"{S}\}}?"),
    name_of=_json_name,
)


def parse_json(tail: str) -> list[Piece]:
    return read_json_calls(tail, JSON_HEAD, parse_json_whole)


def parse_json_whole(tail: str) -> list[Piece]:
    # base_json_detector: a bare object, or a list of them.
    array = json_array(tail)
    if array is not None:
        return calls_or_text(tail, *array)
    values, rest = json_values(tail)
    return calls_or_text(tail, values, rest)


def parse_llama3(tail: str) -> list[Piece]:
    return read_json_calls(tail, LLAMA3_HEAD, parse_llama3_whole)


def parse_llama3_whole(tail: str) -> list[Piece]:
    # llama32_detector: optional <|python_tag|>, then objects joined by ';'.
    body = tail.lstrip().removeprefix("<|python_tag|>")
    values, rest = json_values(body, separator=";")
    return calls_or_text(tail, values, rest)


MISTRAL = "[TOOL_CALLS]"
MISTRAL_HEAD = JsonHead(
    re.compile(
        rf"(?P<lead>{S}(?:\[TOOL_CALLS\]{S})?)(?P<name>[A-Za-z0-9_.\-]{{1,256}})"
        rf"(?:\[CALL_ID\](?P<id>[A-Za-z0-9]{{1,64}}))?\[ARGS\]{S}(?=\{{)"
    ),
    closing=re.compile(S),
    id_of=lambda m: m["id"],
    wrapper=re.compile(""),
)


def parse_mistral(tail: str) -> list[Piece]:
    # mistral_detector: [TOOL_CALLS]name[ARGS]{...}, one call after another (tokenizer v11
    # and later, whose [CALL_ID] some versions add); or, failing that, the older form.
    return read_json_calls(tail, MISTRAL_HEAD, parse_mistral_list)


def parse_mistral_list(tail: str) -> list[Piece]:
    # [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...] (v0.3, Nemo).
    array = json_array(tail.removeprefix(MISTRAL))
    return [tail] if array is None else calls_or_text(tail, *array)


def tagged_blocks(
    tail: str, block: re.Pattern[str], make: Callable[[re.Match[str]], ToolCall | None]
) -> list[Piece]:
    """Calls from each complete block; malformed blocks and gaps stay normal text."""
    pieces: list[Piece] = []
    pos = 0
    for match in block.finditer(tail):
        pieces.append(tail[pos : match.start()])
        pos = match.end()
        try:
            call = make(match)
        except ValueError:
            call = None
        pieces.append(match.group(0) if call is None else call)
    pieces.append(tail[pos:])
    return pieces


def upto(end: str) -> str:
    """A lazy run that cannot cross `end`, so no call's match spans another's end tag."""
    return f"(?:(?!{re.escape(end)}).)*?"


QWEN_END = "</tool_call>"
_QWEN = re.compile(rf"<tool_call>\s*({upto(QWEN_END)})\s*</tool_call>", re.DOTALL)
QWEN_HEAD = CallHead(
    re.compile(
        rf'(?P<lead>{S})<tool_call>{S}\{{{S}"name"{S}:{S}'
        rf'(?P<name>{_JSON_STRING}){S},{S}"arguments"{S}:{S}(?=\{{)'
    ),
    QWEN_END,
    wrapper="}",
    name_of=_json_name,
)


def _qwen_call(match: re.Match[str]) -> ToolCall | None:
    call = call_from_object(json.loads(match.group(1)))
    return call and ToolCall(call.name, call.arguments, raw=match.group(0))


def parse_qwen25(tail: str) -> list[Piece]:
    # qwen25_detector: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated.
    return read_blocks(tail, QWEN_HEAD, lambda block: tagged_blocks(block, _QWEN, _qwen_call))


def ds_token(words: str) -> str:
    """DeepSeek's special tokens use a fullwidth bar and U+2581 between words."""
    return "<\uff5c" + words.replace(" ", "\u2581") + "\uff5c>"


DS_CALLS_BEGIN, DS_CALLS_END = ds_token("tool calls begin"), ds_token("tool calls end")
DS_CALL_BEGIN, DS_SEP, DS_CALL_END = (
    ds_token("tool call begin"),
    ds_token("tool sep"),
    ds_token("tool call end"),
)
_DS_ANY = upto(DS_CALL_END)
_DSV3 = re.compile(
    re.escape(DS_CALL_BEGIN)
    + f"({_DS_ANY})"
    + re.escape(DS_SEP)
    + f"({_DS_ANY})\n```json\n({_DS_ANY})\n```"
    + re.escape(DS_CALL_END),
    re.DOTALL,
)
DS_HEAD = CallHead(
    re.compile(
        rf"(?P<lead>{S}(?:{re.escape(DS_CALLS_BEGIN)}{S})?){re.escape(DS_CALL_BEGIN)}"
        rf"[^<\n]{{0,64}}?{re.escape(DS_SEP)}(?P<name>[^\n<]{{1,256}}?)\n```json\n(?=\{{)"
    ),
    DS_CALL_END,
    wrapper="```",
)


def _dsv3_call(match: re.Match[str]) -> ToolCall | None:
    args = json.loads(match.group(3))
    if not isinstance(args, dict):
        return None
    return ToolCall(match.group(2).strip(), dump_arguments(args), raw=match.group(0))


def parse_deepseek_v3(tail: str) -> list[Piece]:
    # deepseekv3_detector: calls begin, then per call: call begin, "function", tool sep,
    # NAME, a ```json fence holding the arguments, call end; then calls end.
    return read_blocks(tail, DS_HEAD, lambda block: tagged_blocks(block, _DSV3, _dsv3_call))


KIMI_BEGIN, KIMI_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
KIMI_CALL_END = "<|tool_call_end|>"
_KIMI_ID = r"(?P<id>[\w.\-]{1,256}:\d{1,9})"
_KIMI = re.compile(
    rf"<\|tool_call_begin\|>\s*{_KIMI_ID}\s*<\|tool_call_argument_begin\|>\s*"
    rf"(?P<args>\{{{upto(KIMI_CALL_END)}\}})\s*<\|tool_call_end\|>",
    re.DOTALL,
)


def _kimi_name(match: re.Match[str]) -> str:
    return match["id"].rsplit(":", 1)[0].removeprefix("functions.")


KIMI_HEAD = CallHead(
    re.compile(
        rf"(?P<lead>{S}(?:{re.escape(KIMI_BEGIN)}{S})?)<\|tool_call_begin\|>{S}"
        rf"{_KIMI_ID}{S}<\|tool_call_argument_begin\|>{S}(?=\{{)"
    ),
    KIMI_CALL_END,
    name_of=_kimi_name,
    id_of=lambda m: m["id"],  # Kimi's own id, as SGLang keeps it
)


def _kimi_call(match: re.Match[str]) -> ToolCall | None:
    args = json.loads(match.group("args"))
    if not isinstance(args, dict):
        return None
    return ToolCall(_kimi_name(match), dump_arguments(args), id=match["id"], raw=match.group(0))


def parse_kimi_k2(tail: str) -> list[Piece]:
    # kimik2_detector: functions.NAME:IDX<|tool_call_argument_begin|>{...} in call tags.
    return read_blocks(tail, KIMI_HEAD, lambda block: tagged_blocks(block, _KIMI, _kimi_call))


def parse_pythonic(tail: str) -> list[Piece]:
    # pythonic_detector: [f(a=1, b="x"), g()]; keyword literals only, never evaluated.
    source = tail.strip()
    tree = ast.parse(source, mode="eval").body
    if not isinstance(tree, ast.List) or not tree.elts:
        return [tail]
    pieces: list[Piece] = []
    for node in tree.elts:
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
            return [tail]
        if any(kw.arg is None for kw in node.keywords):
            return [tail]
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        raw = ast.get_source_segment(source, node) or ""
        pieces += ["\n"] if pieces else []
        pieces.append(ToolCall(node.func.id, dump_arguments(args), raw=raw))
    return pieces


FORMATS: dict[str, ToolFormat] = {
    "json": ToolFormat(markers=(), leading=("{", "["), parse_tail=parse_json, json_head=JSON_HEAD),
    "qwen25": ToolFormat(markers=("<tool_call>",), parse_tail=parse_qwen25, head=QWEN_HEAD),
    "llama3": ToolFormat(
        markers=("<|python_tag|>",),
        leading=("{",),
        parse_tail=parse_llama3,
        json_head=LLAMA3_HEAD,
    ),
    "mistral": ToolFormat(markers=(MISTRAL,), parse_tail=parse_mistral, json_head=MISTRAL_HEAD),
    "deepseek_v3": ToolFormat(
        markers=(DS_CALLS_BEGIN,),
        parse_tail=parse_deepseek_v3,
        noise=(DS_CALLS_BEGIN, DS_CALLS_END),
        head=DS_HEAD,
    ),
    "pythonic": ToolFormat(markers=(), leading=("[",), parse_tail=parse_pythonic),
    "kimi_k2": ToolFormat(
        markers=(KIMI_BEGIN,),
        parse_tail=parse_kimi_k2,
        noise=(KIMI_BEGIN, KIMI_END),
        head=KIMI_HEAD,
    ),
}
