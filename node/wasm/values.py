"""The smg:gateway values in wasmtime's C form: the request and the response lowered for a
call, the action lifted from its answer, within bounds.

wasmtime-py's own `Func.__call__` converts a `list<u8>` one byte at a time in Python
(~1 µs a byte, so a 32 KiB body used up a 50 ms deadline armed before the call) and lifts
an answer whole into Python objects before a host could bound it. This module writes and
reads the C values of wasmtime's component API (bound by wasmtime-py as `wasmtime._ffi`)
for these few types only: a body is one strided copy in C each way, and an answer's counts
and sizes are checked before any of it becomes a Python object. A `Lowered` value is owned
here and freed with `close()`; the C API copies it on each call, so one serves many calls.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

from wasmtime import _ffi as ffi

from node.wasm.types import Action, Continue, Header, Modify, Reject, WasmRequest, WasmResponse

_VAL = ffi.wasmtime_component_val_t
_SIZE = ctypes.sizeof(_VAL)
_KIND = _VAL.kind.offset
_PAYLOAD = _VAL.of.offset  # a u8 sits at the start of the union


@dataclass(frozen=True)
class AnswerBounds:
    """The most a module's answer may carry (docs/wasm.md, "Limits")."""

    headers: int = 256  # header entries set, added and removed, together
    header_bytes: int = 16384  # one name or value: the node's own request limit
    body_bytes: int = 1024 * 1024  # a replaced body


class AnswerTooLarge(ValueError):
    """A module answered more than `AnswerBounds` allows; the message says what."""


class Lowered:
    """A C value the caller owns: `close()` frees it (once)."""

    def __init__(self, val: Any) -> None:
        self.val = val
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            ffi.wasmtime_component_val_delete(ctypes.byref(self.val))


# -- lowering --------------------------------------------------------------------------


def _string(slot: Any, text: str) -> None:
    slot.kind = ffi.WASMTIME_COMPONENT_STRING
    slot.of.string = ffi.str_to_capi(text)


def _bytes(slot: Any, data: bytes) -> None:
    """A list<u8> in bulk: wasmtime's vector of n values made uninitialised, then its kinds
    and payloads written in place by two strided copies in C (plain values: nothing in them
    is owned, and the rest of each value is never read)."""
    raw = ffi.wasmtime_component_vallist_t()
    if data:
        ffi.wasmtime_component_vallist_new_uninit(raw, len(data))
        start = ctypes.addressof(raw.data.contents)
        layout = memoryview((ctypes.c_char * (len(data) * _SIZE)).from_address(start)).cast("B")
        layout[_KIND::_SIZE] = bytes([ffi.WASMTIME_COMPONENT_U8.value]) * len(data)
        layout[_PAYLOAD::_SIZE] = data
        layout.release()
    else:
        ffi.wasmtime_component_vallist_new_empty(raw)
    slot.kind = ffi.WASMTIME_COMPONENT_LIST
    slot.of.list = raw


def _record(slot: Any, fields: list[tuple[str, Any]]) -> None:
    raw = ffi.wasmtime_component_valrecord_t()
    ffi.wasmtime_component_valrecord_new_uninit(raw, len(fields))
    for i, (name, fill) in enumerate(fields):
        entry = raw.data[i]
        entry.name = ffi.str_to_capi(name)
        fill(entry.val)
    slot.kind = ffi.WASMTIME_COMPONENT_RECORD
    slot.of.record = raw


def _int(kind: Any, attr: str, value: int) -> Any:
    def fill(slot: Any) -> None:
        slot.kind = kind
        setattr(slot.of, attr, value)

    return fill


def _headers(slot: Any, headers: list[Header]) -> None:
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, len(headers))
    for i, (name, value) in enumerate(headers):
        _record(
            raw.data[i],
            [
                ("name", lambda s, n=name: _string(s, n)),
                ("value", lambda s, v=value: _string(s, v)),
            ],
        )
    slot.kind = ffi.WASMTIME_COMPONENT_LIST
    slot.of.list = raw


def lower_request(req: WasmRequest) -> Lowered:
    """The WIT `request` record (strings must hold Unicode scalar values: see convert)."""
    val = _VAL()
    _record(
        val,
        [
            ("method", lambda s: _string(s, req.method)),
            ("path", lambda s: _string(s, req.path)),
            ("query", lambda s: _string(s, req.query)),
            ("headers", lambda s: _headers(s, req.headers)),
            ("body", lambda s: _bytes(s, bytes(req.body))),
            ("request-id", lambda s: _string(s, req.request_id)),
            ("now-epoch-ms", _int(ffi.WASMTIME_COMPONENT_U64, "u64", req.now_epoch_ms)),
        ],
    )
    return Lowered(val)


def lower_response(resp: WasmResponse) -> Lowered:
    val = _VAL()
    _record(
        val,
        [
            ("status", _int(ffi.WASMTIME_COMPONENT_U16, "u16", resp.status)),
            ("headers", lambda s: _headers(s, resp.headers)),
            ("body", lambda s: _bytes(s, bytes(resp.body))),
        ],
    )
    return Lowered(val)


# -- lifting ---------------------------------------------------------------------------


def _fields(val: Any) -> dict[str, Any]:
    record = val.of.record
    return {ffi.to_str(record.data[i].name): record.data[i].val for i in range(record.size)}


def _text(vec: Any, bounds: AnswerBounds, what: str) -> str:
    if vec.size > bounds.header_bytes:
        raise AnswerTooLarge(f"a {what} of {vec.size} bytes, over {bounds.header_bytes}")
    return ctypes.string_at(vec.data, vec.size).decode("utf-8") if vec.size else ""


def _header_list(val: Any, bounds: AnswerBounds, what: str) -> list[Header]:
    items = val.of.list
    out = []
    for i in range(items.size):
        fields = _fields(items.data[i])
        out.append(
            (
                _text(fields["name"].of.string, bounds, f"{what} header name"),
                _text(fields["value"].of.string, bounds, f"{what} header value"),
            )
        )
    return out


def _modify(val: Any, bounds: AnswerBounds) -> Modify:
    fields = _fields(val)
    lists = [fields[k].of.list.size for k in ("headers-set", "headers-add", "headers-remove")]
    if sum(lists) > bounds.headers:
        raise AnswerTooLarge(f"{sum(lists)} header changes, over {bounds.headers}")
    status = fields["status"].of.option
    body = fields["body-replace"].of.option
    removed = fields["headers-remove"].of.list
    return Modify(
        status=status.contents.of.u16 if status else None,
        headers_set=_header_list(fields["headers-set"], bounds, "set"),
        headers_add=_header_list(fields["headers-add"], bounds, "added"),
        headers_remove=[
            _text(removed.data[i].of.string, bounds, "removed header name")
            for i in range(removed.size)
        ],
        body_replace=None if not body else _body(body.contents.of.list, bounds),
    )


def _body(items: Any, bounds: AnswerBounds) -> bytes:
    if items.size > bounds.body_bytes:
        raise AnswerTooLarge(f"a replaced body of {items.size} bytes, over {bounds.body_bytes}")
    if not items.size:
        return b""
    return ctypes.string_at(items.data, items.size * _SIZE)[_PAYLOAD::_SIZE]


def lift_action(val: Any, bounds: AnswerBounds) -> Action:
    """The module's `action` (wasmtime has checked it against the WIT type); AnswerTooLarge
    when it carries more than `bounds`, decided from the sizes before the contents."""
    variant = val.of.variant
    tag = ffi.to_str(variant.discriminant)
    if tag == "continue":
        return Continue()
    if tag == "reject":
        return Reject(variant.val.contents.of.u16)
    return _modify(variant.val.contents, bounds)
