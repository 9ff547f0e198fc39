"""From the node's request and response to what a module is handed: text made valid for
WIT strings, then lowered into wasmtime's values (node/wasm/values.py)."""

from __future__ import annotations

from dataclasses import replace

from node.wasm.types import Header, WasmRequest, WasmResponse
from node.wasm.values import Lowered, lower_request, lower_response


def _text(value: str) -> str:
    """A WIT string holds Unicode scalar values only: aiohttp keeps a header's bytes that are
    not UTF-8 as lone surrogates, which are shown to a module as U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _headers(headers: list[Header]) -> list[Header]:
    return [(_text(name), _text(value)) for name, value in headers]


def sanitized(req: WasmRequest) -> WasmRequest:
    return replace(
        req,
        method=_text(req.method),
        path=_text(req.path),
        query=_text(req.query),
        headers=_headers(req.headers),
        request_id=_text(req.request_id),
    )


def lowered_request(req: WasmRequest) -> Lowered:
    return lower_request(sanitized(req))


def lowered_response(resp: WasmResponse) -> Lowered:
    return lower_response(replace(resp, headers=_headers(resp.headers)))
