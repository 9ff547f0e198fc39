"""Between the dataclasses of `types` and wasmtime's component values.

wasmtime maps a WIT record to an attribute bag named by the WIT field names
(`request-id`), and the `action` variant, whose cases lift to different Python
types, to the bare payload: None for `continue`, an int for `reject`, a record for
`modify`."""

from __future__ import annotations

from typing import Any

from wasmtime.component import Record, Variant

from node.wasm.types import Action, Continue, Header, Modify, Reject, WasmRequest, WasmResponse


def _record(**fields: Any) -> Record:
    record = Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _text(value: str) -> str:
    """A WIT string holds Unicode scalar values only: aiohttp keeps a header's bytes that are
    not UTF-8 as lone surrogates, which are shown to a module as U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _headers(headers: list[Header]) -> list[Record]:
    return [_record(name=_text(name), value=_text(value)) for name, value in headers]


def request_value(req: WasmRequest) -> Record:
    return _record(
        method=req.method,
        path=_text(req.path),
        query=_text(req.query),
        headers=_headers(req.headers),
        body=bytes(req.body),
        request_id=_text(req.request_id),
        now_epoch_ms=req.now_epoch_ms,
    )


def response_value(resp: WasmResponse) -> Record:
    return _record(status=resp.status, headers=_headers(resp.headers), body=bytes(resp.body))


def _pairs(records: list[Any]) -> list[Header]:
    return [(r.name, r.value) for r in records]


def _modify(record: Any) -> Modify:
    body = getattr(record, "body-replace")
    return Modify(
        status=record.status,
        headers_set=_pairs(getattr(record, "headers-set")),
        headers_add=_pairs(getattr(record, "headers-add")),
        headers_remove=list(getattr(record, "headers-remove")),
        body_replace=None if body is None else bytes(body),
    )


def action_from_value(value: Any) -> Action:
    """The module's answer as an Action (wasmtime has checked it against the WIT type)."""
    if isinstance(value, Variant):  # a wasmtime that tags every variant
        value = value.payload if value.tag != "continue" else None
    if value is None:
        return Continue()
    if isinstance(value, int):
        return Reject(value)
    return _modify(value)
