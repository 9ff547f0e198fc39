"""The prefill half of a PD pair over gRPC, as SGLang's gRPC PD router sends it.

Both engines get the same `GenerateRequest`, with `disaggregated_params` (the
prefill's bootstrap host and port and a room shared by both halves, the fields
the HTTP path puts in the body: `node.proxy.pd.bootstrap_fields`; the room is
31 bits here, as the proto's field is an int32). The decode's
stream is the client's; the prefill's is drained here. What the decode half
knows of it (`PrefillWait`) is shared with the HTTP path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import grpc
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.grpcproxy.link import EngineLink
from node.grpcproxy.status import failure_of
from node.proxy.pd import PrefillWait, bootstrap_port, new_room
from node.workers.worker import Worker

log = logging.getLogger(__name__)


ROOM_BITS = 31  # the proto's bootstrap_room is an int32


def disaggregated_params(prefill: Worker) -> pb.DisaggregatedParams:
    """The prefill's host and bootstrap port (0: unknown) and a new room."""
    return pb.DisaggregatedParams(
        bootstrap_host=urlsplit(prefill.url).hostname or "",
        bootstrap_port=bootstrap_port(prefill) or 0,
        bootstrap_room=new_room(ROOM_BITS),
    )


class EnginePrefill(PrefillWait):
    """The prefill half of one gRPC attempt: started with the decode's message."""

    def __init__(
        self,
        worker: Worker,
        links: Callable[[Worker], EngineLink | None],
        timeout: float,
        background: set[asyncio.Task[None]],
    ) -> None:
        super().__init__(worker, background)
        self.params = disaggregated_params(worker)
        self._links = links
        self._timeout = timeout

    def start(self, message: Any) -> None:
        """Send `message` (a GenerateRequest carrying `self.params`) to the prefill."""
        self._start(self._run(message))

    async def _run(self, message: Any) -> None:
        worker = self.worker
        link = self._links(worker)
        if link is None:
            self._settle_answer(f"prefill worker {worker.id}: not connected")
            return
        worker.load += 1
        worker.breaker.on_attempt()
        verdict: bool | None = None
        call = link.stub.Generate(message, timeout=self._timeout, metadata=link.metadata)
        try:
            if await call.read() is grpc.aio.EOF:
                verdict = False
                self._settle_answer(f"prefill worker {worker.id}: its stream ended at once")
                return
            self._settle_answer(None)
            while await call.read() is not grpc.aio.EOF:  # drained, never kept
                pass
            verdict = True
        except grpc.aio.AioRpcError as exc:
            failure = failure_of(exc.code())
            log.warning("prefill worker %s: Generate failed: %s", worker.id, exc.code())
            # A refusal of the request itself is the decode half's to tell the client.
            verdict = failure.client_fault or (failure.retry and failure.status < 500)
            if failure.client_fault:
                self._settle_answer(None)
            else:
                self._settle_answer(f"prefill worker {worker.id}: the engine failed")
        finally:
            call.cancel()
            worker.load -= 1
            worker.breaker.settle(verdict)
            self._settle_answer("the prefill half was cancelled")
