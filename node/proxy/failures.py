"""What a client is told when a worker fails, and what the node's log keeps.

Exception text from aiohttp and the OS names hosts, ports, internal addresses,
TLS details and library internals (`ClientPayloadError Response payload is
not completed: <TransferEncodingError: 400, ...>`): useful to an operator, a
map of the inside for an attacker, noise to a client. So a client gets one
fixed phrase per kind of failure (`kind_of`), the log gets the detail
(`log_failure`), and the two never mix. A stream that breaks after its first
byte ends with an error event in the shape of the API the client speaks
(`stream_error`): Anthropic's for `/v1/messages`, OpenAI's elsewhere.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import aiohttp
import orjson

from node.proxy.worker_http import ConnectFailed, TooLarge, WorkerHttpError

log = logging.getLogger(__name__)

# Fixed phrases a client may see (the API reference lists them too).
STREAM_BROKE = "the worker's stream broke off before it finished; the answer is incomplete"
STREAM_ENDED_EARLY = "the worker's stream ended before its last event; the answer is incomplete"
REDIRECTED = "the worker answered with a redirect, which meshgate never follows"
TOO_LARGE = TooLarge.kind
# Upstream failures that mean "this worker did not answer"; the request can go elsewhere.
UPSTREAM_ERRORS = (aiohttp.ClientError, WorkerHttpError, TimeoutError)


def kind_of(exc: BaseException) -> str:
    """The kind of an upstream failure, as a fixed phrase (never the exception's text)."""
    connecting = isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed)
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed):
        cause = exc.os_error
    if isinstance(exc, aiohttp.ClientSSLError) or isinstance(cause, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, socket.gaierror):
        return "host name did not resolve"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return "timed out"
    if connecting:
        return "cannot connect"
    if isinstance(exc, WorkerHttpError):
        return exc.kind
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response was cut off"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "sent a malformed response"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "the connection failed"
    return "failed"


def did_not_answer(exc: BaseException) -> str:
    return f"did not answer: {kind_of(exc)}"


def log_failure(worker_id: str, url: str, what: str, exc: BaseException) -> None:
    """The detail of a failure, for the operator (`url` never carries credentials)."""
    log.warning("worker %s (%s): %s: %s: %s", worker_id, url, what, type(exc).__name__, exc)


def stream_error(path: str, message: str) -> bytes:
    """The SSE event that ends a stream cut short, in the client's API's shape."""
    if path == "/v1/messages":
        body: dict[str, Any] = {"type": "error", "error": {"type": "api_error", "message": message}}
    else:
        body = {
            "error": {"type": "upstream_error", "code": "stream_interrupted", "message": message}
        }
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
