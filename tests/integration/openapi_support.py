"""Requests generated from an OpenAPI 3.1 document, for fuzzing a running node.

- `Spec.validate(schema, value)`: the JSON Schema subset the document uses
  ($ref, type, enum, const, bounds, lengths, pattern, properties, required,
  additionalProperties, minProperties, items, anyOf, oneOf, allOf).
- `Spec.values(schema)`: a hypothesis strategy of values valid for `schema`.
- `Spec.breaking(schema)`: raw bodies that break it: wrong types, missing and
  unknown fields, huge strings, deep nesting, odd numbers, non-JSON bytes,
  non-objects, empty bodies.
- `Spec.cases(operation)`: whole requests (`Case`): path parameters (known
  ids, UUIDs, unicode, `..`, long ids), query parameters and a body.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import strategies as st

Schema = dict[str, Any]
Strategy = st.SearchStrategy[Any]

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Values of every JSON type, with the edges handlers get wrong: digit-like unicode
# ("²".isdigit() is True, int("²") fails), huge and negative numbers, empty containers.
ODD_STRINGS = (
    "",
    " ",
    "²",
    "\u0661\u0662",  # Arabic-Indic 12: isdecimal, int() takes it
    "\U0001d7d9\U0001d7da",  # mathematical double-struck 12
    "0",
    "-1",
    "1.5",
    "null",
    "true",
    "*",
    "..",
    ".",
    "%2e%2e",
    "../../etc/passwd",
    "a/b",
    "\u0000",
    "\u202e",
    "\ufeff",
    "é",
    "日本語",
    "😀",
    "\n",
    "a\n",
    "[::1",
    "http://[::1",
    "http://a\uff03b",
)
ODD_NUMBERS = (
    0,
    -1,
    1,
    -0.0,
    0.5,
    1.5,
    2**31,
    2**53 + 1,
    2**63,
    2**64 - 1,
    -(2**63),
    1e308,
    1e-300,
)
ODD_VALUES: tuple[Any, ...] = (None, True, False, [], {}, [None], {"": None}, *ODD_NUMBERS)


@dataclass
class Case:
    """One request to send."""

    operation_id: str
    method: str
    template: str
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = "application/json"
    kind: str = "valid"  # how the body was made: valid | empty | not_json | wrong_type | ...

    @property
    def path(self) -> str:
        path = self.template
        for name, value in self.path_params.items():
            # '.' too, so that '..' reaches the node instead of being resolved on the way.
            path = path.replace("{" + name + "}", quote(value, safe="").replace(".", "%2E"))
        return path

    @property
    def data(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def describe(self) -> str:
        body = self.body if self.body is None or len(self.body) <= 600 else self.body[:600]
        more = "" if self.body is None or len(self.body) <= 600 else f"... ({len(self.body)} B)"
        return (
            f"{self.method.upper()} {self.path}"
            + (f" ?{self.query}" if self.query else "")
            + f" [{self.kind}, Content-Type {self.content_type}] body={body!r}{more}"
        )


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


def nested(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"{}" + b"}" * depth


class Spec:
    """An OpenAPI document, for validating values and generating requests."""

    def __init__(
        self,
        document: dict[str, Any],
        *,
        field_values: dict[str, Strategy] | None = None,
        path_values: dict[str, Strategy] | None = None,
        query_values: dict[str, Strategy] | None = None,
        huge_sizes: tuple[int, ...] = (5_000, 70_000),
        long_id_max: int = 3000,
    ) -> None:
        self.document = document
        self.field_values = field_values or {}  # top-level body fields: extra values to try
        self.path_values = path_values or {}  # path parameters: known values (existing ids)
        self.query_values = query_values or {}
        self.huge_sizes = huge_sizes
        self.long_id_max = long_id_max

    # -- the document -------------------------------------------------------------------------

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, item in self.document["paths"].items():
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    yield path, method, operation

    def resolve(self, schema: Any) -> Any:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
            seen += 1
            assert seen < 50, "a $ref loop"
        return schema

    def body_schema(self, operation: dict[str, Any]) -> Schema | None:
        body = self.resolve(operation.get("requestBody"))
        if not body:
            return None
        return self.resolve(body["content"]["application/json"]["schema"])  # type: ignore[no-any-return]

    # -- validation -----------------------------------------------------------------------------

    def validate(self, schema: Any, value: Any, where: str = "$") -> list[str]:
        """Problems with `value` against `schema` (empty: valid)."""
        schema = self.resolve(schema)
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{where}: no value is allowed"]
        problems: list[str] = []
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_is_type(value, t) for t in types):
                return [f"{where}: {type_name(value)} is not {'/'.join(types)}"]
        if "const" in schema and not _same(value, schema["const"]):
            problems.append(f"{where}: must be {schema['const']!r}")
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            problems.append(f"{where}: must be one of {schema['enum']!r}")
        if _is_type(value, "number"):
            if "minimum" in schema and value < schema["minimum"]:
                problems.append(f"{where}: below {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                problems.append(f"{where}: above {schema['maximum']}")
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                problems.append(f"{where}: not above {schema['exclusiveMinimum']}")
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0):
                problems.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                problems.append(f"{where}: longer than {schema['maxLength']}")
            if "pattern" in schema and not _ecma_search(schema["pattern"], value):
                problems.append(f"{where}: does not match {schema['pattern']}")
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            for name in schema.get("required", ()):
                if name not in value:
                    problems.append(f"{where}: {name} is required")
            extra = schema.get("additionalProperties", True)
            for name, item in value.items():
                if name in properties:
                    problems += self.validate(properties[name], item, f"{where}.{name}")
                elif extra is False:
                    problems.append(f"{where}: unknown field {name!r}")
                elif isinstance(extra, dict):
                    problems += self.validate(extra, item, f"{where}.{name}")
            if len(value) < schema.get("minProperties", 0):
                problems.append(f"{where}: fewer than {schema['minProperties']} fields")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                problems += self.validate(schema["items"], item, f"{where}[{i}]")
        for sub in schema.get("allOf", ()):
            problems += self.validate(sub, value, where)
        if "anyOf" in schema and all(self.validate(s, value, where) for s in schema["anyOf"]):
            problems.append(f"{where}: matches none of anyOf")
        if "oneOf" in schema:
            matched = sum(1 for s in schema["oneOf"] if not self.validate(s, value, where))
            if matched != 1:
                problems.append(f"{where}: matches {matched} of oneOf, not exactly 1")
        return problems

    # -- valid values ---------------------------------------------------------------------------

    def values(self, schema: Any, top: bool = True) -> Strategy:
        """Values valid for `schema` (checked against it, so the generator may be loose)."""
        schema = self.resolve(schema)
        strategy = self._values(schema, top)
        return strategy.filter(lambda v: not self.validate(schema, v))

    def _values(self, schema: Any, top: bool) -> Strategy:
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or not (set(schema) - {"description", "title", "default"}):
            return json_values()
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "oneOf" in schema and "type" not in schema:
            return st.one_of([self._values(s, top) for s in schema["oneOf"]])
        if "anyOf" in schema and "type" not in schema:
            return st.one_of([self._values(s, top) for s in schema["anyOf"]])
        types = schema.get("type", "object" if "properties" in schema else None)
        if types is None:
            return json_values()
        if isinstance(types, list):
            return st.one_of([self._typed(schema, t, top) for t in types])
        return self._typed(schema, types, top)

    def _typed(self, schema: Schema, kind: str, top: bool) -> Strategy:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.integers(*_int_bounds(schema.get("minimum"), schema.get("maximum")))
        if kind == "number":
            low, high = schema.get("minimum"), schema.get("maximum")
            if "exclusiveMinimum" in schema:
                low = schema["exclusiveMinimum"]
            floats = st.floats(
                min_value=low,
                max_value=high,
                allow_nan=False,
                allow_infinity=False,
                exclude_min="exclusiveMinimum" in schema,
            )
            ints = st.integers(*_int_bounds(low, high))
            if "exclusiveMinimum" in schema:
                ints = ints.filter(lambda v: v > schema["exclusiveMinimum"])
            return st.one_of(ints, floats)
        if kind == "string":
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True)
            return text(schema.get("minLength", 0), schema.get("maxLength", 40))
        if kind == "array":
            return st.lists(self._values(schema.get("items", {}), False), max_size=4)
        if kind == "object":
            return self._object(schema, top)
        raise AssertionError(f"unknown type {kind}")

    def _object(self, schema: Schema, top: bool) -> Strategy:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))

        def prop(name: str) -> Strategy:
            strategy = self._values(properties[name], False)
            if top and name in self.field_values:
                strategy = st.one_of(self.field_values[name], strategy)
            return strategy

        fixed = st.fixed_dictionaries(
            {n: prop(n) for n in properties if n in required},
            optional={n: prop(n) for n in properties if n not in required},
        )
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return fixed
        if isinstance(extra, dict):
            values = self._values(extra, False)
        elif properties:
            return fixed  # an open object with known fields: keep to them (extras: breaking)
        else:
            values = json_values()
        more = st.dictionaries(
            text(1, 12).filter(lambda k: k not in properties), values, max_size=3
        )
        return st.tuples(fixed, more).map(lambda pair: {**pair[1], **pair[0]})

    # -- breaking bodies --------------------------------------------------------------------------

    def breaking(self, schema: Schema) -> Strategy:
        """(kind, raw body) pairs that do not satisfy `schema`, or are not JSON at all."""
        branches = [self.resolve(b) for b in schema.get("oneOf", [])] or [schema]
        properties = {k: v for b in branches for k, v in b.get("properties", {}).items()}
        required = set.intersection(*(set(b.get("required", ())) for b in branches))
        valid = self.values(schema)
        kinds: dict[str, tuple[int, Strategy]] = {
            "empty": (1, st.just(b"")),
            "not_json": (2, not_json()),
            "not_object": (
                1,
                json_values().filter(lambda v: not isinstance(v, dict)).map(json_bytes),
            ),
            "deep_nesting": (2, self._deep(valid, properties)),
            "huge_string": (2, self._huge(valid, properties)),
            "extra_field": (2, self._extra(valid, properties)),
            "odd_number": (2, self._odd_number(valid, properties)),
        }
        if any(self.field_paths(b) for b in branches):
            # The most telling kind: one field, maybe nested, of a type the handler must refuse.
            kinds["wrong_type"] = (8, self._wrong_type(valid, branches))
        if required:
            kinds["missing_field"] = (2, self._missing(valid, required))
        names = [name for name, (weight, _) in kinds.items() for _ in range(weight)]
        return st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), kinds[name][1]))

    def field_paths(self, schema: Any, depth: int = 2) -> list[tuple[tuple[str, ...], Schema]]:
        """(path, schema) of every property of an object schema, nested objects included."""
        schema = self.resolve(schema)
        found: list[tuple[tuple[str, ...], Schema]] = []
        branches = [self.resolve(b) for b in schema.get("oneOf", [])] or [schema]
        for branch in branches:
            for name, sub in branch.get("properties", {}).items():
                sub = self.resolve(sub)
                found.append(((name,), sub))
                if depth > 1 and "properties" in sub:
                    found += [((name, *p), s) for p, s in self.field_paths(sub, depth - 1)]
        return found

    def _wrong_type(self, valid: Strategy, branches: list[Schema]) -> Strategy:
        probes: tuple[Any, ...] = (None, "x", "\u00b2", 1, 1.5, True, [], {}, [1], {"a": 1})
        paths = [
            (path, schema)
            for b in branches
            for path, schema in self.field_paths(b)
            if any(self.validate(schema, probe) for probe in probes)  # some value is wrong
        ]

        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            value = dict(draw(valid))
            path, schema = draw(st.sampled_from(paths))
            bad = draw(confusing(schema).filter(lambda v: bool(self.validate(schema, v))))
            target = value
            for name in path[:-1]:
                if not isinstance(target.get(name), dict):
                    target[name] = {}
                target = target[name]
            target[path[-1]] = bad
            return json_bytes(value)

        return build()

    def _missing(self, valid: Strategy, required: set[str]) -> Strategy:
        return st.tuples(valid, st.sampled_from(sorted(required))).map(
            lambda pair: json_bytes({k: v for k, v in pair[0].items() if k != pair[1]})
        )

    def _extra(self, valid: Strategy, properties: dict[str, Any]) -> Strategy:
        names = text(1, 30).filter(lambda k: k not in properties)
        return st.tuples(valid, names, json_values()).map(
            lambda t: json_bytes({**t[0], t[1]: t[2]})
        )

    def _huge(self, valid: Strategy, properties: dict[str, Any]) -> Strategy:
        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            value = dict(draw(valid))
            size = draw(st.sampled_from(self.huge_sizes))
            char = draw(st.sampled_from(("a", "é", "😀", "0", "\\")))
            name = draw(st.sampled_from(sorted(properties) or ["huge"]) | st.just("huge"))
            value[name] = char * size
            return json_bytes(value)

        return build()

    def _deep(self, valid: Strategy, properties: dict[str, Any]) -> Strategy:
        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            depth = draw(st.sampled_from((64, 256, 1000, 20_000)))
            shape = draw(st.sampled_from(("list", "dict")))
            if draw(st.booleans()):
                return nested(depth, shape)  # the whole body
            value = dict(draw(valid))
            name = draw(st.sampled_from(sorted(properties) or ["deep"]))
            value[name] = None
            raw = json_bytes(value)
            return raw.replace(
                json_bytes(name) + b":null", json_bytes(name) + b":" + nested(depth, shape), 1
            )

        return build()

    def _odd_number(self, valid: Strategy, properties: dict[str, Any]) -> Strategy:
        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            value = dict(draw(valid))
            name = draw(st.sampled_from(sorted(properties) or ["n"]))
            literal = draw(
                st.sampled_from(
                    (
                        b"1e400",
                        b"-1e400",
                        b"1e-400",
                        b"-0",
                        b"18446744073709551616",
                        b"1.0",
                        b"0.0",
                        b"123456789012345678901234567890",
                        b"NaN",
                        b"Infinity",
                        b"0x10",
                        b"01",
                        b"+1",
                    )
                )
            )
            value[name] = None
            raw = json_bytes(value)
            return raw.replace(json_bytes(name) + b":null", json_bytes(name) + b":" + literal, 1)

        return build()

    # -- whole requests --------------------------------------------------------------------------

    def path_value(self, name: str, schema: Schema) -> Strategy:
        odd = st.one_of(
            st.sampled_from([s for s in ODD_STRINGS if s]),
            st.uuids().map(str),
            st.uuids().map(lambda u: str(u).upper()),
            st.uuids().map(lambda u: "{" + str(u) + "}"),
            st.uuids().map(lambda u: "urn:uuid:" + str(u)),
            text(1, 60),
            st.integers(200, self.long_id_max).map(lambda n: "x" * n),
            st.integers(50, self.long_id_max // 9).map(lambda n: "é" * n),
        )
        if name in self.path_values:
            return mostly(self.path_values[name], odd)
        return odd

    def query_value(self, name: str, schema: Schema) -> Strategy:
        plain = st.one_of(
            st.sampled_from(ODD_STRINGS),
            text(0, 30),
            st.integers().map(str),
            DIGIT_LIKE if "pattern" in schema else st.nothing(),
        )
        if name in self.query_values:
            return mostly(self.query_values[name], plain)
        return plain

    def cases(
        self,
        path: str,
        method: str,
        operation: dict[str, Any],
        *,
        bodies: str = "both",
    ) -> Strategy:
        """Requests for one operation; `bodies`: both | valid | breaking."""
        params = [self.resolve(p) for p in operation.get("parameters", ())]
        path_params = {
            p["name"]: self.path_value(p["name"], p["schema"]) for p in params if p["in"] == "path"
        }
        query = {
            p["name"]: self.query_value(p["name"], p["schema"])
            for p in params
            if p["in"] == "query"
        }
        schema = self.body_schema(operation)
        bodies_strategy: Strategy
        if schema is None:
            bodies_strategy = st.just(("none", None))
        else:
            valid = self.values(schema).map(lambda v: ("valid", json_bytes(v)))
            broken = self.breaking(schema)
            options = {"valid": valid, "breaking": broken, "both": mostly(valid, broken, 0.5)}
            bodies_strategy = options[bodies]
        content_types = st.sampled_from(
            ("application/json",) * 6 + ("text/plain", None, "application/x-www-form-urlencoded")
        )

        @st.composite
        def build(draw: st.DrawFn) -> Case:
            kind, body = draw(bodies_strategy)
            return Case(
                operation_id=operation["operationId"],
                method=method,
                template=path,
                path_params={n: draw(s) for n, s in path_params.items()},
                query=draw(st.fixed_dictionaries({}, optional=query)),
                body=body,
                content_type=draw(content_types) if body is not None else None,
                kind=kind,
            )

        return build()


# -- plain strategies ---------------------------------------------------------------------------

# Strings that pass `str.isdigit()`: ASCII, superscripts (int() refuses them), other scripts.
DIGIT_LIKE = st.one_of(
    st.sampled_from(("0", "1", "10", "99999", "\u00b2", "\u00b9\u00b2", "\u0661", "\u2460")),
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=4),
)


def mostly(first: Strategy, second: Strategy, share: float = 0.6) -> Strategy:
    """`first` about `share` of the time, else `second` (one_of would flatten and dilute)."""
    cut = round(share * 10)
    return st.integers(0, 9).flatmap(lambda i: first if i < cut else second)


def confusing(schema: Schema) -> Strategy:
    """Values of the wrong type for `schema`, the confusions handlers fall for first."""
    types = schema.get("type", [])
    types = types if isinstance(types, list) else [types]
    likely: list[Strategy] = []
    if "integer" in types or "number" in types or "pattern" in schema:
        likely += [DIGIT_LIKE, st.sampled_from(ODD_NUMBERS), st.sampled_from((True, False))]
    if "object" in types or "properties" in schema:
        likely.append(st.sampled_from(("x", "", [1], [["a", 1]], 1, True, [], 0)))
    if "array" in types:
        likely.append(st.sampled_from(("x", {"a": 1}, 1, [1], [{}], [None], [""])))
    if "string" in types or "enum" in schema or "const" in schema:
        likely.append(st.sampled_from((0, 1, True, [], {}, ["x"], {"x": 1}, 1.5)))
    generic = st.one_of(st.sampled_from(ODD_VALUES), st.sampled_from(ODD_STRINGS), json_values())
    return mostly(st.one_of(likely), generic, 0.7) if likely else generic


def text(min_size: int = 0, max_size: int = 40) -> Strategy:
    """Text with the characters handlers trip over: digit-like, control, RTL, astral."""
    alphabet = st.one_of(
        st.sampled_from(string.ascii_letters + string.digits + "-_./:*% "),
        st.characters(categories=("Nd", "No")),  # superscripts etc.: isdigit() but not int()-able
        st.characters(codec="utf-8"),
    )
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def json_values(max_leaves: int = 8) -> Strategy:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        text(0, 20),
        st.sampled_from(ODD_STRINGS),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(text(0, 10), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def not_json() -> Strategy:
    return st.one_of(
        st.sampled_from(
            (
                b"{",
                b"}",
                b"{'a': 1}",
                b'{"a": 1,}',
                b"[1,]",
                b"NaN",
                b"undefined",
                b"\xff\xfe\x00",
                b"\xef\xbb\xbf{}",
                b'{"a": "\\ud800"}',
                b'{"a": "\xc3\x28"}',
                b"a=1&b=2",
                b"\x00" * 16,
                b"<xml/>",
                b'{"a": 1} trailing',
            )
        ),
        st.binary(min_size=1, max_size=64).filter(_not_json),
    )


def _not_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return False


def _int_bounds(low: float | None, high: float | None) -> tuple[int, int]:
    """Integer bounds within what JSON encoders carry (-2**63 .. 2**64 - 1)."""
    return (
        -(2**63) if low is None else math.ceil(low),
        2**64 - 1 if high is None else math.floor(high),
    )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_type(value: Any, kind: str) -> bool:
    actual = type_name(value)
    return actual == kind or (kind == "number" and actual == "integer")


def _same(a: Any, b: Any) -> bool:
    return type_name(a) == type_name(b) and a == b


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _ecma_search(pattern: str, value: str) -> bool:
    """JSON Schema patterns are ECMA 262: `$` is the very end (Python's `$` allows a '\\n')."""
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern.replace("$", r"\Z"))
    return compiled.search(value) is not None


Check = Callable[[Case], str | None]
