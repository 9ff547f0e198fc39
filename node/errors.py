"""The error envelope every client sees: `{"error": {"type", "code", "message", "param"}}`.

Handlers raise `ApiError`; the error middleware turns it (and aiohttp's own
HTTP exceptions, such as 413 for an oversized body) into that JSON shape, so no
client ever gets an HTML page or a bare status. The management API (seed 002)
has a shape of its own; which one a route answers with is in its route record
(`node.api.table`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from node.api.table import Envelope, installed

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
}

_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "LIMIT_REACHED",
    429: "TOO_MANY_REQUESTS",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


class ApiError(Exception):
    """A failed request: status, machine-readable code, and a message saying what to fix."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "ERROR")
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    def fields(self) -> dict[str, Any]:
        """What its answer carries besides the status and the message."""
        return dict(code=self.code, param=self.param, headers=self.headers, extra=self.extra)

    def response(self) -> web.Response:
        return error_response(self.status, self.message, **self.fields())


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error = {
        "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "code": code or _CODES.get(status, "ERROR"),
        "message": message,
        "param": param,
    }
    if extra:
        error.update(extra)
    return {"error": error}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(status, message, code=code, param=param, extra=extra)),
        content_type="application/json",
        headers=headers,
    )


def management_body(
    status: int, message: str, code: str | None, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """Seed 002's error shape for the management API: {"error": text, "details": ...}."""
    extra = extra or {}
    body = {"error": message, "details": extra.get("details"), "code": code or _CODES.get(status)}
    body.update((k, v) for k, v in extra.items() if k != "details")  # e.g. the limit reached
    return body


def _render(
    request: web.Request,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    if _envelope(request) == "management":
        if param is not None and not (extra or {}).get("details"):
            extra = {**(extra or {}), "details": f"field {param}"}  # the field at fault
        body = management_body(status, message, code, extra)
        return web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
        )
    return error_response(status, message, code=code, param=param, headers=headers, extra=extra)


def render_error(request: web.Request, exc: ApiError) -> web.Response:
    """The answer `exc` gets on `request`'s route, as the error middleware would give it
    (for a step that must see the answer before it is sent: WASM OnResponse)."""
    return _render(request, exc.status, exc.message, **exc.fields())


def _envelope(request: web.Request) -> Envelope:
    table = installed(request)
    return "error" if table is None else table.envelope(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except ApiError as exc:
        return render_error(request, exc)
    except web.HTTPRequestEntityTooLarge:
        return _render(
            request,
            413,
            f"request body is larger than the limit of {request.client_max_size} bytes; "
            "send less or raise --max-payload-size",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason or "error"
        if exc.status == 404:
            reason = f"no route for {request.method} {request.path}"
        elif exc.status == 405:
            reason = f"method {request.method} is not allowed on {request.path}"
        allow = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _render(request, exc.status, reason, headers=allow)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(
            request, 500, "internal error; the node logged the details", code="INTERNAL_ERROR"
        )
