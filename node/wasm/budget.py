"""The body bytes lowered for modules at once on this node, capped.

A body handed to a module costs the host about 80 bytes per byte while a call holds it
(wasmtime's values: one C value per byte, converted again at the call), so bodies of a few
MiB on every wasm thread at once would cost GiBs. A call waits for room up to the busy
wait, then fails as busy: the module did nothing wrong."""

from __future__ import annotations

import threading
import time
from functools import cache

from node.wasm.errors import WasmBusy

# Body bytes lowered at once: four bodies of --wasm-max-body-bytes' largest value (2 MiB),
# ~650 MiB of host memory at most.
BODY_BYTES_IN_FLIGHT = 8 * 1024 * 1024


class BodiesBusy(WasmBusy):
    def __init__(self, module: str, size: int, wait: float) -> None:
        Exception.__init__(
            self,
            f"wasm module {module!r} is busy: the node is already handing other modules "
            f"bodies of {BODY_BYTES_IN_FLIGHT} bytes in all, and a body of {size} bytes "
            f"found no room for {wait * 1000:.0f} ms",
        )
        self.module = module


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()

    def take(self, size: int, module: str, until: float, wait: float) -> None:
        """Room for `size` bytes, waiting until `until` (monotonic); BodiesBusy after. A body
        over the whole budget gets it when nothing else is in flight."""
        with self._cond:
            while self.used and self.used + size > self.limit:
                left = until - time.monotonic()
                if left <= 0:
                    raise BodiesBusy(module, size, wait)
                self._cond.wait(left)
            self.used += size

    def give(self, size: int) -> None:
        with self._cond:
            self.used -= size
            self._cond.notify_all()


@cache
def body_budget() -> ByteBudget:
    """The process's budget (one node per process)."""
    return ByteBudget(BODY_BYTES_IN_FLIGHT)
