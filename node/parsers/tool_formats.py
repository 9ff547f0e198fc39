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

from node.parsers.call_blocks import HEAD_LIMIT, CallHead, S, read_blocks
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


def tagged_block(
    block: str, begin: str, read: Callable[[str, int], ToolCall | None], opens: str = ""
) -> list[Piece]:
    """A block (ending with its one end tag) as text and the call it holds, if any.

    The call starts at the first `begin` tag (followed by `opens`, a pattern, if given);
    `read(block, at)` reads it through the end tag, None if malformed. Tags are found
    with str.find, never a regex over the block: lazy runs that cannot cross the end
    tag take quadratic (or worse) time on crafted text. A later begin tag never reads
    where the first failed: the block's end, which every call reaches, is the same.
    """
    at = block.find(begin)
    while opens and at >= 0 and not re.match(opens, block[at : at + HEAD_LIMIT]):
        at = block.find(begin, at + len(begin))
    try:
        call = read(block, at) if at >= 0 else None
    except ValueError:
        call = None
    return [block] if call is None else [block[:at], call, ""]


QWEN_END = "</tool_call>"
QWEN_HEAD = CallHead(
    re.compile(
        rf'(?P<lead>{S})<tool_call>{S}\{{{S}"name"{S}:{S}'
        rf'(?P<name>{_JSON_STRING}){S},{S}"arguments"{S}:{S}(?=\{{)'
    ),
    QWEN_END,
    wrapper="}",
    name_of=_json_name,
)


def _qwen_call(block: str, at: int) -> ToolCall | None:
    # <tool_call>, whitespace, a JSON object, whitespace, </tool_call>.
    inside = block[at + len("<tool_call>") : len(block) - len(QWEN_END)]
    call = call_from_object(json.loads(inside))
    return call and ToolCall(call.name, call.arguments, raw=block[at:])


def parse_qwen25(tail: str) -> list[Piece]:
    # qwen25_detector: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, repeated.
    return read_blocks(
        tail, QWEN_HEAD, lambda block: tagged_block(block, "<tool_call>", _qwen_call)
    )


def ds_token(words: str) -> str:
    """DeepSeek's special tokens use a fullwidth bar and U+2581 between words."""
    return "<\uff5c" + words.replace(" ", "\u2581") + "\uff5c>"


DS_CALLS_BEGIN, DS_CALLS_END = ds_token("tool calls begin"), ds_token("tool calls end")
DS_CALL_BEGIN, DS_SEP, DS_CALL_END = (
    ds_token("tool call begin"),
    ds_token("tool sep"),
    ds_token("tool call end"),
)
_DS_FENCE, _DS_CLOSE = "\n```json\n", "\n```" + DS_CALL_END
DS_HEAD = CallHead(
    re.compile(
        rf"(?P<lead>{S}(?:{re.escape(DS_CALLS_BEGIN)}{S})?){re.escape(DS_CALL_BEGIN)}"
        rf"[^<\n]{{0,64}}?{re.escape(DS_SEP)}(?P<name>[^\n<]{{1,256}}?)\n```json\n(?=\{{)"
    ),
    DS_CALL_END,
    wrapper="```",
)


def _dsv3_call(block: str, at: int) -> ToolCall | None:
    # call begin, the type, tool sep, NAME, a ```json fence, the arguments, ```, call end:
    # the first separator and the first fence after it, as SGLang's lazy regex reads them.
    sep = block.find(DS_SEP, at + len(DS_CALL_BEGIN))
    fence = block.find(_DS_FENCE, sep + len(DS_SEP)) if sep >= 0 else -1
    args_at, args_end = fence + len(_DS_FENCE), len(block) - len(_DS_CLOSE)
    if fence < 0 or args_at > args_end or not block.endswith(_DS_CLOSE):
        return None
    args = json.loads(block[args_at:args_end])
    name = block[sep + len(DS_SEP) : fence].strip()
    return ToolCall(name, dump_arguments(args), raw=block[at:]) if isinstance(args, dict) else None


def parse_deepseek_v3(tail: str) -> list[Piece]:
    # deepseekv3_detector: calls begin, then per call: call begin, "function", tool sep,
    # NAME, a ```json fence holding the arguments, call end; then calls end.
    return read_blocks(tail, DS_HEAD, lambda block: tagged_block(block, DS_CALL_BEGIN, _dsv3_call))


KIMI_BEGIN, KIMI_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
KIMI_CALL_END = "<|tool_call_end|>"
_KIMI_ID = r"(?P<id>[\w.\-]{1,256}:\d{1,9})"
_KIMI_OPEN = re.compile(
    rf"<\|tool_call_begin\|>\s*{_KIMI_ID}\s*<\|tool_call_argument_begin\|>\s*(?=\{{)"
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


def _kimi_call(block: str, at: int) -> ToolCall | None:
    # call begin, functions.NAME:IDX, argument begin, a JSON object, whitespace, call end.
    match = _KIMI_OPEN.match(block, at)
    args = block[match.end() : len(block) - len(KIMI_CALL_END)].rstrip() if match else ""
    if match is None or len(args) < 2 or not args.endswith("}"):
        return None
    value = json.loads(args)
    if not isinstance(value, dict):
        return None
    return ToolCall(_kimi_name(match), dump_arguments(value), id=match["id"], raw=block[at:])


def parse_kimi_k2(tail: str) -> list[Piece]:
    # kimik2_detector: functions.NAME:IDX<|tool_call_argument_begin|>{...} in call tags.
    return read_blocks(
        tail,
        KIMI_HEAD,
        lambda block: tagged_block(block, "<|tool_call_begin|>", _kimi_call, _KIMI_OPEN.pattern),
    )


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
