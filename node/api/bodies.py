"""Typed request bodies: msgspec Structs, with constraints, decoded into 400s that name the field.

A body type is declared once: the handler gets a typed object, the route
record names the type (`Route.body`), and the OpenAPI document's schema is
generated from it (`schema_components`). Unknown fields are refused
(`forbid_unknown_fields`), so a typo never passes silently. A field's
`Meta(description=...)` says what a valid value is, and is added to the 400's
message. The inference hot path never comes here: its bodies stay bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web

from node.api.common import body_was_read, json_object
from node.errors import ApiError

Schema = dict[str, Any]
T = TypeVar("T", bound=msgspec.Struct)
REF_TEMPLATE: Final = "#/components/schemas/{name}"


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A control-plane request body (snake_case names, as the API has always had)."""


class ApiBody(Body, rename="camel"):
    """A management API body: seed 002's camelCase names."""


def whole(pattern: str) -> str:
    """A JSON Schema pattern that matches only a whole string, in Python as in ECMA 262:
    Python's `$` also matches before a final newline, so the end is `(?![\\s\\S])`."""
    return f"^(?:{pattern})(?![\\s\\S])"


async def read_body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    """The request body as `kind`, or a 400 (413) that says what to fix. With `optional`,
    no body at all means every field's default."""
    readable = request.can_read_body or body_was_read(request)
    data = await json_object(request) if readable or not optional else {}
    return decode(data, kind)


def decode(data: Any, kind: type[T]) -> T:
    """`data` (decoded JSON) as `kind`, or a 400 naming the field at fault."""
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise _refusal(kind, str(exc)) from None


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<where>[^`]*)`)?$", re.DOTALL)
_ENUM_VALUE = re.compile(r"^Invalid enum value .*$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>[^`]+)`$")


def _refusal(kind: type[msgspec.Struct], text: str) -> ApiError:
    match = _AT.match(text)
    assert match is not None  # the pattern matches any text
    what, where = match["what"], _short((match["where"] or "").lstrip("."))
    # The value sent is not echoed back (it may be anything, up to the body limit): the
    # field's description says what a valid one is.
    what = _ENUM_VALUE.sub("invalid enum value", what)
    field = _FIELD.match(what)
    if field is not None:
        name = _short(f"{where}.{field['name']}" if where else field["name"])
        if field["kind"] == "contains unknown":
            allowed = ", ".join(sorted(_described(kind).get(where, {})))
            message = f"unknown field(s): {name}" + (f"; allowed: {allowed}" if allowed else "")
            return ApiError(400, message, param=name)
        return ApiError(400, _explained(kind, name, f"{name} is required"), param=name)
    what = _short(what, 200)
    if not where:
        return ApiError(400, f"request body: {_lower_first(what)}")
    return ApiError(400, _explained(kind, where, f"{where}: {_lower_first(what)}"), param=where)


def _explained(kind: type[msgspec.Struct], where: str, message: str) -> str:
    """The message, and what a valid value is (the field's description, if it has one)."""
    parent, _, name = re.sub(r"\[[^\]]*\]$", "", where).rpartition(".")
    description = _described(kind).get(parent, {}).get(name)
    return f"{message} ({description})" if description else message


def _short(text: str, limit: int = 80) -> str:
    """Names and messages built from the client's input, bounded."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


@functools.cache
def _described(kind: type[msgspec.Struct]) -> dict[str, dict[str, str | None]]:
    """{object path: {field: its description or None}} of a body type, nested objects too."""
    schema = msgspec.json.schema(kind)
    defs = schema["$defs"]
    found: dict[str, dict[str, str | None]] = {}

    def walk(ref: str, path: str, depth: int) -> None:
        body = defs[ref.rsplit("/", 1)[1]]
        fields = found.setdefault(path, {})
        for name, prop in body.get("properties", {}).items():
            parts = [prop, *prop.get("anyOf", ())]  # an optional field's text may sit in a branch
            texts = [part["description"] for part in parts if "description" in part]
            fields[name] = texts[0] if texts else None
            for part in parts:
                if "$ref" in part and part["$ref"].startswith("#/$defs/") and depth < 4:
                    walk(part["$ref"], f"{path}.{name}" if path else name, depth + 1)

    walk(schema["$ref"], "", 0)
    return found


def schema_components(kinds: Sequence[type]) -> dict[str, Schema]:
    """The OpenAPI component schemas of the body types (and of the types they use)."""
    _, components = msgspec.json.schema_components(tuple(kinds), ref_template=REF_TEMPLATE)
    for schema in components.values():
        schema.pop("title", None)
        if schema.get("required") == []:
            del schema["required"]
    for kind in kinds:
        # What a struct cannot say itself (e.g. "one or more of these fields"), or, where a
        # registry checks the values, the registry's own shape of them.
        components[kind.__name__].update(getattr(kind, "schema_extra", {}))
        if hasattr(kind, "json_schema"):
            components[kind.__name__] = kind.json_schema
    return components
