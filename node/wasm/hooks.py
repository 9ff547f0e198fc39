"""The WASM middleware on the inference path (docs/wasm.md).

`on_request` runs after authentication and before the rate limits, quota and admission:
its header changes go to the worker, a body it replaces is what the worker gets (and what
routing reads). `on_response` runs on a whole answer before it is sent, and on a stream
before its first byte (status and headers only: the body is still coming); `on_error`
runs it on the node's own error answer to a request `on_request` let through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson
from aiohttp import web

from node.errors import ApiError, render_error
from node.pipeline.request import InferenceRequest
from node.proxy.facts import model_of, wants_stream
from node.proxy.forward import header_value_ok
from node.wasm import runtime
from node.wasm.chain import ChainStopped, Edited, Record, request_of, run_chain
from node.wasm.convert import lowered_request, lowered_response
from node.wasm.registry import Loaded, WasmRegistry
from node.wasm.values import Lowered

log = logging.getLogger("meshgate.wasm")

# Headers the node itself writes for the answer's framing: a module never changes them.
RESPONSE_FRAMING = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding"}
)


class WasmHooks:
    def __init__(self, registry: WasmRegistry, record: Record, max_body: int) -> None:
        self.registry = registry
        self.record = record  # metrics of each call
        self.max_body = max_body  # the largest body handed to a module

    async def on_request(self, ex: InferenceRequest) -> None:
        self._refuse_if_not_ready("OnRequest")
        edited = await self._on_request(ex.http, ex.body, ex.request_id)
        if edited is None:
            return
        ex.header_edits = edited.header_edits()
        if edited.body != ex.body:
            _replace_body(ex, edited.body)

    async def guard(self, http: web.Request, body: bytes, request_id: str) -> None:
        """OnRequest on a route the node answers itself (tokenize, the parsers): a gate. A
        reject or a failure stops the request; changes are not applied (no worker gets
        them, and the node's own answer does not depend on headers a module sets)."""
        self._refuse_if_not_ready("OnRequest")
        await self._on_request(http, body, request_id)

    async def _on_request(self, http: web.Request, body: bytes, request_id: str) -> Edited | None:
        """The OnRequest chain over the request: what the modules made of it (None: no
        module attached)."""
        chain = self.registry.chain("OnRequest")
        if not chain:
            return None
        base = runtime.WasmRequest(
            method=http.method,
            path=http.path,
            query=http.query_string,
            headers=list(http.headers.items()),
            body=body,
            request_id=request_id,
            now_epoch_ms=int(time.time() * 1000),
        )
        edited = Edited(list(base.headers), body)
        await self._run(
            chain, "OnRequest", edited, lambda now: lowered_request(request_of(now, base))
        )
        return edited

    async def on_response(
        self, ex: InferenceRequest, out: web.StreamResponse, body: bytes | None
    ) -> None:
        """Change `out` (not yet sent) as the modules say. `body`: a whole answer's, or None
        for a stream."""
        ex.replied = True  # once per request: an error it raises is not passed through it
        self._refuse_if_not_ready("OnResponse")
        chain = self.registry.chain("OnResponse")
        if not chain:
            return
        base = runtime.WasmResponse(out.status, list(out.headers.items()), body or b"")
        edited = Edited(list(base.headers), base.body)

        def lower(now: Edited) -> Lowered:
            return lowered_response(
                runtime.WasmResponse(now.status or base.status, now.headers, now.body)
            )

        await self._run(chain, "OnResponse", edited, lower)
        if edited.status is not None:
            out.set_status(_http_status(edited.status))
        for name, value in edited.header_edits().items():
            unsafe = value is not None and not header_value_ok(value)
            if name.lower() in RESPONSE_FRAMING or unsafe:
                log.warning("WASM OnResponse: ignored a change of the %r header", name[:64])
                continue  # the node frames the answer; a line break would split it
            out.headers.popall(name, None)
            if value is not None:
                out.headers[name] = value
        if body is not None and edited.body != body and isinstance(out, web.Response):
            out.body = edited.body

    async def on_error(self, ex: InferenceRequest, error: ApiError) -> web.Response:
        """The node's own error answer to a request OnRequest let through (a 429 from the
        limits, a 503 with no worker, admission), through OnResponse like any answer: as in
        SMG, whose OnResponse runs on whatever the gateway answers behind it."""
        out = render_error(ex.http, error)
        await self.on_response(ex, out, out.body if isinstance(out.body, bytes) else b"")
        return out

    def _refuse_if_not_ready(self, point: str) -> None:
        """A module that may not be skipped (an auth module, say) and is still fetching or
        compiling here, or failed here, holds requests back: they never pass unchecked."""
        missing = self.registry.not_ready(point)
        if missing:
            raise ApiError(
                503,
                f"WASM module {missing[0]!r} is not ready on this node; try again shortly",
                code="WASM_MODULE_UNAVAILABLE",
                headers={"Retry-After": "1"},
                extra={"module": missing[0]},
            )

    async def _run(
        self,
        chain: list[Loaded],
        point: str,
        edited: Edited,
        lower: Callable[[Edited], Lowered],
    ) -> None:
        """The whole chain in one hand-off to a wasm thread."""
        since = time.monotonic()  # a busy module's wait counts the wait for a thread too
        try:
            await runtime.in_thread(
                lambda: run_chain(chain, point, edited, lower, self.record, self.max_body, since)
            )
        except ChainStopped as stop:
            raise ApiError(
                _http_status(stop.status),
                str(stop),
                code=stop.code,
                headers={"Retry-After": "1"} if stop.code == "WASM_MODULE_BUSY" else None,
                extra={"module": stop.module},
            ) from None


def _http_status(status: int) -> int:
    """A module's status as an HTTP one: 100-599, else 500 (a module cannot break HTTP)."""
    return status if 100 <= status <= 599 else 500


def _replace_body(ex: InferenceRequest, body: bytes) -> None:
    """A body a module replaced goes to the worker; routing reads it too, if it is JSON."""
    ex.body = body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(data, dict):
        ex.data, ex.model, ex.stream = data, model_of(data), wants_stream(data)
