"""Running middleware components: a small pool of ready instances per module, calls on
worker threads, a deadline and a memory cap on every call.

The event loop never waits for a module's run: wasmtime's Python API calls into the
native library through ctypes, which releases the GIL for the whole wasm run, so a
call on a worker thread leaves the loop free. Each run is bounded by its epoch deadline.

The public interface of the package is here; the parts live in the sibling modules."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import wasmtime

from node.wasm.component import (
    INTERFACES,
    CompiledComponent,
    artifact_key,
    compile_component,
    deserialize,
    digest_of,
    instantiate,
    serialize,
)
from node.wasm.convert import action_from_value, request_value, response_value
from node.wasm.engine import deadline_ticks
from node.wasm.errors import FailureKind, WasmFailed, WasmInvalid
from node.wasm.types import (
    Action,
    Continue,
    Limits,
    Modify,
    Reject,
    WasmRequest,
    WasmResponse,
)

__all__ = [
    "Action",
    "CompiledComponent",
    "Continue",
    "Limits",
    "Modify",
    "ModuleRunner",
    "Reject",
    "WasmFailed",
    "WasmInvalid",
    "WasmRequest",
    "WasmResponse",
    "artifact_key",
    "compile_component",
    "deserialize",
    "digest_of",
    "serialize",
]

# Worker threads shared by every module of the process: a bound on the cores wasm takes.
WORKERS = 4
# Instantiation runs the component's start code; it gets its own, looser deadline.
INSTANTIATE_TIMEOUT_MS = 2000
# What a guest prints to stderr is kept (the tail) only to tell an out-of-memory abort.
_STDERR_TAIL = 4096
# How guests say they ran out (Rust's alloc error handler, Python's MemoryError, C's
# abort), and wasmtime when a module's initial memory is already over the cap.
_OOM = re.compile(
    rb"memory allocation|out of memory|MemoryError|alloc_error|cannot allocate"
    rb"|exceeds memory limits",
    re.IGNORECASE,
)


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="wasm")


@dataclass
class _Slot:
    """One instance with its own store: a store that failed is dropped, never reused."""

    store: wasmtime.Store
    funcs: dict[str, Any]
    stderr: bytearray = field(default_factory=bytearray)


def _classify(exc: Exception, stderr: bytes) -> FailureKind:
    text = str(exc)
    if "interrupt" in text:  # the epoch deadline passed
        return "timeout"
    if _OOM.search(text.encode()) or _OOM.search(stderr):
        return "memory"
    return "trap"


def _cause(text: str) -> str:
    """wasmtime's reason ("wasm trap: ..."), not the backtrace that comes before it."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Caused by:" in lines and lines[-1] != "Caused by:":
        return lines[lines.index("Caused by:") + 1][:300]
    return lines[0][:300] if lines else ""


class ModuleRunner:
    """Calls one compiled module's OnRequest/OnResponse exports within `limits`.

    Up to `pool_size` calls run at once, each on its own pre-instantiated store; more
    wait their turn on the event loop. Build it off the loop for a large component:
    it instantiates the pool's first store right away."""

    def __init__(
        self,
        compiled: CompiledComponent,
        name: str,
        limits: Limits | None = None,
        *,
        pool_size: int = 2,
    ) -> None:
        self.compiled = compiled
        self.name = name
        self.limits = limits or Limits()
        self._pool_size = pool_size
        self._idle: list[_Slot] = []
        self._lock = threading.Lock()
        self._gate = asyncio.Semaphore(pool_size)
        self._idle.append(self._new_slot())

    @property
    def exports(self) -> frozenset[str]:
        return self.compiled.exports

    async def on_request(self, req: WasmRequest) -> Action:
        return await self._call("OnRequest", lambda: request_value(req))

    async def on_response(self, resp: WasmResponse) -> Action:
        return await self._call("OnResponse", lambda: response_value(resp))

    async def _call(self, point: str, value: Callable[[], Any]) -> Action:
        if point not in self.compiled.exports:
            raise ValueError(f"wasm module {self.name!r} does not export {point}")
        async with self._gate:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_executor(), self._call_sync, point, value)

    def _call_sync(self, point: str, value: Callable[[], Any]) -> Action:
        argument = value()  # built before a store is taken: a bad value costs no instance
        slot = self._take()
        func = slot.funcs[point]
        try:
            slot.store.set_epoch_deadline(deadline_ticks(self.limits.timeout_ms))
            raw = func(slot.store, argument)
            func.post_return(slot.store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            # The store may be mid-run or out of memory: drop it, the next call gets a new one.
            raise self._failed(exc, slot) from None
        self._give(slot)
        return action_from_value(raw)

    def _failed(self, exc: Exception, slot: _Slot) -> WasmFailed:
        kind = _classify(exc, bytes(slot.stderr))
        return WasmFailed(self.name, kind, _cause(str(exc)))

    def _take(self) -> _Slot:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_slot()

    def _give(self, slot: _Slot) -> None:
        slot.stderr.clear()
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(slot)

    def _new_slot(self) -> _Slot:
        slot = _Slot(wasmtime.Store(self.compiled.engine), {})
        wasi = wasmtime.WasiConfig()  # no args, env, preopens, stdin or sockets granted

        def keep_tail(data: bytes) -> None:
            slot.stderr.extend(data)
            del slot.stderr[:-_STDERR_TAIL]

        wasi.stderr_custom = keep_tail
        slot.store.set_wasi(wasi)
        slot.store.set_limits(memory_size=self.limits.memory_bytes)
        slot.store.set_epoch_deadline(deadline_ticks(INSTANTIATE_TIMEOUT_MS))
        try:
            instance = instantiate(slot.store, self.compiled)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise self._failed(exc, slot) from None
        for point, iface in self.compiled.interfaces.items():
            func = INTERFACES[point][1]
            index = instance.get_export_index(slot.store, iface)
            found = index and instance.get_export_index(slot.store, func, index)
            if not found:
                raise WasmInvalid(f"wasm module {self.name!r}: {iface} has no {func} function")
            slot.funcs[point] = instance.get_func(slot.store, found)
        return slot
