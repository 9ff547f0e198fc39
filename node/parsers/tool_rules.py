"""Which parsed calls a request keeps: `tools`, `tool_choice` and argument schemas.

- A call naming a function that is not in `tools` is dropped (SGLang logs and
  skips it); with no `tools`, every name is allowed.
- `tool_choice`: "auto" (the default) and "required" keep every allowed call
  ("required" cannot make a model call a tool: the caller sees `emitted == 0`);
  "none" turns tool parsing off (the text stays content); a named function
  (`{"type": "function", "function": {"name": ...}}`) keeps only its calls and
  leaves the others' text as normal text.
- A tool's `parameters` JSON schema (Draft 2020-12, or the schema's own
  `$schema`) is checked with `jsonschema`: a call whose arguments fail is not
  emitted, its text stays normal text, and it is reported as an `InvalidCall`.
  `pattern` and `patternProperties` are annotations, never run (`without_regex`).

Schemas are bounded (size, depth, count of tools) and `check_tools` names the
first problem, so a route can answer 400 before parsing; a schema that gets
past no check is still never trusted to raise: its calls are refused instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

MAX_TOOLS: Final = 128
MAX_SCHEMA_BYTES: Final = 64 * 1024  # per tool, as JSON text
MAX_SCHEMA_DEPTH: Final = 32
MAX_CHECKED_ARGUMENTS: Final = 256 * 1024  # longer arguments are refused, not validated
CHOICES: Final = ("none", "auto", "required")


class BadTools(ValueError):
    """`tools` or `tool_choice` that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class InvalidCall:
    """A parsed call that was not emitted, and why (for callers to count or log)."""

    name: str
    arguments: str
    reason: str
    emitted: bool = False  # streamed before it could be checked (a committed call)


@dataclass(frozen=True)
class Verdict:
    keep: bool
    as_text: bool = False  # refused calls give their text back as normal text
    reason: str | None = None  # reported in invalid_calls when set


KEEP: Final = Verdict(keep=True)


def chosen_name(tool_choice: Any) -> str | None:
    """The function a named `tool_choice` forces, else None; BadTools if malformed."""
    if tool_choice is None or tool_choice in CHOICES:
        return None
    if isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
        function = tool_choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
    raise BadTools(
        'tool_choice must be "none", "auto", "required" or '
        '{"type": "function", "function": {"name": ...}}'
    )


def _function(tool: Any) -> Mapping[str, Any] | None:
    """An OpenAI tool (`{type, function: {name, parameters}}`) or a bare `{name, parameters}`."""
    if not isinstance(tool, Mapping):
        return None
    inner = tool.get("function", tool)
    if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
        return inner
    return None


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counting no further than `limit` + 1."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        children = item.values() if isinstance(item, Mapping) else item
        if isinstance(item, Mapping | list):
            stack.extend((child, depth + 1) for child in children)
    return deepest


def validator_class(schema: Any) -> type[Validator] | None:
    """The schema's own `$schema` draft, Draft 2020-12 without one, None if unknown."""
    # jsonschema loads in ~0.1 s: only requests that send schemas pay for it.
    from jsonschema.validators import Draft202012Validator, validator_for

    if isinstance(schema, Mapping) and "$schema" in schema:
        return cast("type[Validator] | None", validator_for(schema, default=None))
    return Draft202012Validator


# Keywords that run the schema's regular expressions with Python's backtracking `re`:
# a client's pattern like ^(a+)+$ takes exponential time, so none is ever run.
_REGEX_KEYWORDS: Final = ("pattern", "patternProperties")
# These read patternProperties to know which properties are "additional".
_PATTERN_READERS: Final = ("additionalProperties", "unevaluatedProperties")


def _annotation(*_: Any) -> Iterator[Any]:
    return iter(())


def without_regex(cls: type[Validator], schema: Any) -> type[Validator]:
    """`cls` with `pattern` and `patternProperties` as annotations; when the schema has
    patternProperties, additional/unevaluated properties are not restricted either."""
    from jsonschema.validators import extend

    ignored = _REGEX_KEYWORDS
    if '"patternProperties"' in json.dumps(schema):
        ignored += _PATTERN_READERS
    return cast("type[Validator]", extend(cls, dict.fromkeys(ignored, _annotation)))


def schema_problem(schema: Any) -> str | None:
    """Why a `parameters` schema cannot be used, or None."""
    if not isinstance(schema, Mapping | bool):
        return "parameters must be a JSON schema (an object)"
    try:
        size = len(json.dumps(schema))
    except (TypeError, ValueError, RecursionError):
        return "parameters must be JSON"
    if size > MAX_SCHEMA_BYTES:
        return f"parameters is {size} bytes of JSON; the limit is {MAX_SCHEMA_BYTES}"
    if _depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"parameters nests deeper than {MAX_SCHEMA_DEPTH} levels"
    cls = validator_class(schema)
    if cls is None:
        return "parameters names a $schema this server does not know; use Draft 2020-12"
    from jsonschema import SchemaError

    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        return f"parameters is not a valid JSON schema: {exc.message[:200]}"
    except Exception as exc:  # an unknown $schema, a bad $ref: never a 5xx
        return f"parameters cannot be used: {str(exc)[:200]}"
    return None


def check_tools(tools: Any, tool_choice: Any = None) -> str | None:
    """The first problem with a request's `tools` and `tool_choice`, or None."""
    if tools is not None and not isinstance(tools, list):
        return "tools must be a list of tool definitions"
    tools = tools or []
    if len(tools) > MAX_TOOLS:
        return f"tools has {len(tools)} entries; the limit is {MAX_TOOLS}"
    names = set()
    for i, tool in enumerate(tools):
        function = _function(tool)
        if function is None:
            return f'tools[{i}] must be {{"type": "function", "function": {{"name": ...}}}}'
        names.add(function["name"])
        if "parameters" in function and function["parameters"] is not None:
            problem = schema_problem(function["parameters"])
            if problem:
                return f"tools[{i}] ({function['name'][:64]}): {problem}"
    try:
        name = chosen_name(tool_choice)
    except BadTools as exc:
        return str(exc)
    if name is not None and name not in names:
        return f"tool_choice names {name[:64]!r}, which is not in tools"
    return None


class ToolRules:
    """Judges each parsed call of one request against its tools and tool_choice."""

    def __init__(self, tools: Sequence[Mapping[str, Any]] | None = None, tool_choice: Any = None):
        functions = [f for f in map(_function, tools or ()) if f is not None]
        self.parse = tool_choice != "none"
        self._allowed = {f["name"] for f in functions} if functions else None
        try:
            self._only = chosen_name(tool_choice)
        except BadTools:
            self._only = None  # a caller that skipped check_tools gets "auto"
        self._schemas = {
            f["name"]: f["parameters"] for f in functions if f.get("parameters") is not None
        }
        self._validators: dict[str, Validator | str] = {}

    def streams(self, name: str) -> bool:
        """Whether a call to `name` is kept whatever its arguments, so they may stream."""
        return self._name_problem(name) is None and name not in self._schemas

    def _name_problem(self, name: str) -> Verdict | None:
        if self._allowed is not None and name not in self._allowed:
            return Verdict(keep=False, reason=f"no tool named {name[:64]!r}")
        if self._only is not None and name != self._only:
            return Verdict(keep=False, as_text=True)
        return None

    def judge(self, name: str, arguments: str) -> Verdict:
        refused = self._name_problem(name)
        if refused is not None:
            return refused
        problem = self._argument_problem(name, arguments)
        if problem:
            return Verdict(keep=False, as_text=True, reason=problem)
        return KEEP

    def _argument_problem(self, name: str, arguments: str) -> str | None:
        if name not in self._schemas:
            return None
        validator = self._validator(name)
        if isinstance(validator, str):
            return validator
        if len(arguments) > MAX_CHECKED_ARGUMENTS:
            return f"arguments longer than {MAX_CHECKED_ARGUMENTS} characters are not checked"
        try:
            error = next(iter(validator.iter_errors(json.loads(arguments))), None)
        except (ValueError, RecursionError):
            return "arguments are not JSON"
        except Exception as exc:  # an unresolvable $ref and the like
            return f"the schema of {name[:64]} cannot be applied: {str(exc)[:200]}"
        if error is None:
            return None
        where = error.json_path
        return (
            f"arguments do not match the schema of {name[:64]}: {error.message[:200]} (at {where})"
        )

    def _validator(self, name: str) -> Validator | str:
        if name not in self._validators:
            schema = self._schemas[name]
            problem = schema_problem(schema)
            if problem:
                self._validators[name] = problem
            else:
                cls = validator_class(schema)
                assert cls is not None  # schema_problem said so
                self._validators[name] = without_regex(cls, schema)(schema)
        return self._validators[name]


def tool_names(tools: Iterable[Mapping[str, Any]] | None) -> set[str] | None:
    """Names from OpenAI tool definitions (`{type, function: {name}}`) or bare `{name}`."""
    names = {f["name"] for f in map(_function, tools or ()) if f is not None}
    return names or None
