"""A call's time limit counted over the module's own run, not the host's work around it
(copying the request in, which wasmtime does between the guest's allocator calls).

An epoch deadline is checked only inside wasm code, and a deadline callback fires at the
first check once the deadline has passed. Each firing here grants one more tick; a call
may fire `ticks` times, and the next firing ends it. A module that runs sees one firing per
tick, so it is stopped after its limit (to within a tick); host work between two entries
into wasm costs one firing however many ticks it took. Every arming also sets a hard
wall-clock cap from its start, checked at each firing: host work between entries into
wasm (WASI calls, copying) cannot stretch a call past it. wasmtime-py does not wrap the C
API's deadline callback; it is set here through the bindings it ships (`wasmtime._ffi`)."""

from __future__ import annotations

import ctypes
import time

import wasmtime
from wasmtime import _ffi as ffi

from node.wasm.engine import TICK_MS

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _data: None)  # nothing to free
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
# wasmtime's own words for an epoch interruption, which the runtime and the docs use.
INTERRUPTED = b"wasm trap: interrupt"


class RunDeadline:
    """The deadline of one store; `timed_out` tells the last call's end from a trap."""

    def __init__(self, store: wasmtime.Store) -> None:
        self.timed_out = False
        self._left = 0
        self._wall_until = 0.0  # monotonic seconds
        self._callback = _CALLBACK(self._fired)  # kept alive as long as the store
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)

    def arm_run(self, store: wasmtime.Store, ticks: int, wall_ms: int) -> None:
        """`ticks` ticks of the module's own run, and at most `wall_ms` from now."""
        self.timed_out, self._left = False, ticks
        self._wall_until = time.monotonic() + wall_ms / 1000
        store.set_epoch_deadline(1)

    def arm_from_now(self, store: wasmtime.Store, ticks: int) -> None:
        """`ticks` from now, the host's work included (instantiation)."""
        self.timed_out, self._left = False, 0
        self._wall_until = time.monotonic() + ticks * TICK_MS / 1000
        store.set_epoch_deadline(ticks)

    def _fired(self, _context: object, _data: object, delta: object, kind: object) -> int:
        if self._left > 0 and time.monotonic() < self._wall_until:
            self._left -= 1
            delta[0], kind[0] = 1, _CONTINUE  # type: ignore[index]
            return 0
        self.timed_out = True
        return ctypes.cast(ffi.wasmtime_error_new(INTERRUPTED), ctypes.c_void_p).value or 0
