"""An engine's gRPC status -> what the client is told, and whether another worker may try.

The engine's own message goes to the log; the client gets it only for
INVALID_ARGUMENT and the like, which are about the request it sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class EngineFailure:
    status: int  # the HTTP status when no other worker can serve it
    code: str  # the error body's code
    retry: bool  # the next worker may succeed
    client_fault: bool  # the engine refused the request itself: its message is for the client


# What each status means for the request; anything else is the engine's own failure.
_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: EngineFailure(400, "invalid_request", False, True),
    grpc.StatusCode.OUT_OF_RANGE: EngineFailure(400, "invalid_request", False, True),
    grpc.StatusCode.FAILED_PRECONDITION: EngineFailure(400, "invalid_request", False, True),
    grpc.StatusCode.NOT_FOUND: EngineFailure(404, "not_found", False, True),
    grpc.StatusCode.UNIMPLEMENTED: EngineFailure(501, "not_implemented", False, True),
    grpc.StatusCode.RESOURCE_EXHAUSTED: EngineFailure(429, "engine_overloaded", True, False),
    grpc.StatusCode.UNAVAILABLE: EngineFailure(503, "engine_unavailable", True, False),
    grpc.StatusCode.DEADLINE_EXCEEDED: EngineFailure(504, "engine_timeout", True, False),
    grpc.StatusCode.ABORTED: EngineFailure(503, "engine_aborted", True, False),
    grpc.StatusCode.CANCELLED: EngineFailure(503, "engine_cancelled", True, False),
    grpc.StatusCode.UNAUTHENTICATED: EngineFailure(502, "engine_refused", True, False),
    grpc.StatusCode.PERMISSION_DENIED: EngineFailure(502, "engine_refused", True, False),
}
ENGINE_ERROR = EngineFailure(502, "engine_error", True, False)
MAX_MESSAGE_CHARS = 300


def failure_of(code: grpc.StatusCode | None) -> EngineFailure:
    return _BY_CODE.get(code, ENGINE_ERROR) if code is not None else ENGINE_ERROR


def client_message(code: grpc.StatusCode | None, details: str | None) -> str:
    """What the client reads: the engine's words when they are about its request."""
    name = code.name if code is not None else "UNKNOWN"
    if failure_of(code).client_fault and details:
        return f"the engine refused the request ({name}): {details[:MAX_MESSAGE_CHARS]}"
    return f"the engine failed ({name})"
