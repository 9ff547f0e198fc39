"""Unary calls to a worker's scheduler with a deadline, and their failures as fixed phrases.

An engine's error text may hold anything (paths, prompts), so what a client or
`/workers` sees is the method and the status name; the detail goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

log = logging.getLogger(__name__)


class GrpcCallFailed(Exception):
    """A call to a gRPC worker failed; str() is a fixed phrase naming the method and status."""

    def __init__(self, method: str, code: grpc.StatusCode | None) -> None:
        self.method = method
        self.code = code
        if code is None or code == grpc.StatusCode.UNAVAILABLE:
            reason = "did not answer: connection refused or unreachable"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            reason = "did not answer in time"
        else:
            reason = f"answered {code.name}"
        super().__init__(f"{method} {reason}")

    @property
    def detail(self) -> BaseException:
        """The underlying gRPC error, for the operator's log (never shown to a client)."""
        return self.__cause__ or self


async def unary(method: str, call: Any, request: Any, metadata: Any, timeout: float) -> Any:
    """`call(request)` with `metadata` and a deadline of `timeout` seconds."""
    try:
        return await call(request, metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        log.debug("%s: %s: %s", method, exc.code().name, exc.details())
        raise GrpcCallFailed(method, exc.code()) from exc
