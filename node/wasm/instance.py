"""One instance of a module in its own store, under the store's limits, and one call of it.

A store is used by one thread at a time (the pool hands it out) and is thrown away after a
failed call: it may be mid-run or out of memory.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

from node.wasm.component import INTERFACES, CompiledComponent, instantiate
from node.wasm.deadline import RunDeadline
from node.wasm.engine import deadline_ticks
from node.wasm.errors import FailureKind, WasmFailed, WasmInvalid
from node.wasm.nowait import WAIT_REFUSED
from node.wasm.types import Action, Limits
from node.wasm.values import AnswerBounds, AnswerTooLarge, Lowered, lift_action

# Instantiation runs the component's start code; it gets its own, looser deadline.
INSTANTIATE_TIMEOUT_MS = 2000
# A call's hard wall-clock cap beyond its run time: the host's work around the run (copying
# a body of --wasm-max-body-bytes in) fits in it many times over.
WALL_SLACK_MS = 250
# What a guest prints to stderr is kept (the tail) only to tell an out-of-memory abort.
_STDERR_TAIL = 4096
# How guests say they ran out (Rust's alloc error handler, Python's MemoryError, C's
# abort), and wasmtime when a module's memory or table is already over its cap.
_OOM = re.compile(
    rb"memory allocation|out of memory|MemoryError|alloc_error|cannot allocate"
    rb"|exceeds memory limits|exceeds table limits|resource limit exceeded",
    re.IGNORECASE,
)

# wasmtime refuses to copy more than its hostcall fuel allows between host and guest in
# one call (a list of a few MiB): it says so with these words.
_TOO_MUCH = "too much data is being copied between the host and the guest"


def classify(text: str, stderr: bytes, timed_out: bool) -> FailureKind:
    if timed_out or "interrupt" in text or WAIT_REFUSED in text:
        return "timeout"
    if _TOO_MUCH in text:  # wasmtime's own bound on an answer it lifts
        return "answer"
    if _OOM.search(text.encode()) or _OOM.search(stderr):
        return "memory"
    return "trap"


def cause(text: str) -> str:
    """wasmtime's reason ("wasm trap: ..."), not the backtrace that comes before it."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Caused by:" in lines and lines[-1] != "Caused by:":
        return lines[lines.index("Caused by:") + 1][:300]
    return lines[0][:300] if lines else ""


def _tail_keeper(tail: bytearray) -> Callable[[bytes], None]:
    """A stderr sink that keeps the last _STDERR_TAIL bytes in `tail`, and holds nothing else."""

    def keep(data: bytes) -> None:
        tail.extend(data)
        del tail[:-_STDERR_TAIL]

    return keep


class Instance:
    """A ready instance: `call` runs one export within the limits."""

    def __init__(self, compiled: CompiledComponent, name: str, limits: Limits) -> None:
        self.name = name
        self.store = wasmtime.Store(compiled.engine)
        self.stderr = bytearray()
        self.deadline = RunDeadline(self.store)
        wasi = wasmtime.WasiConfig()  # no args, env, preopens, stdin or sockets granted
        # wasmtime-py keeps this callback in a global table until the store is freed: it
        # must not hold the store (a bound method would, through self), or none is freed.
        wasi.stderr_custom = _tail_keeper(self.stderr)
        self.store.set_wasi(wasi)
        self.store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=limits.table_elements,
            instances=limits.instances,
            tables=limits.tables,
            memories=limits.memories,
        )
        self.deadline.arm_from_now(self.store, deadline_ticks(INSTANTIATE_TIMEOUT_MS))
        try:
            instance = instantiate(self.store, compiled)
        except (WasmtimeError, wasmtime.Trap) as exc:
            raise self.failed(exc) from None
        self.funcs: dict[str, Any] = {}
        for point, iface in compiled.interfaces.items():
            func = INTERFACES[point][1]
            index = instance.get_export_index(self.store, iface)
            found = index and instance.get_export_index(self.store, func, index)
            if not found:
                raise WasmInvalid(f"wasm module {name!r}: {iface} has no {func} function")
            self.funcs[point] = instance.get_func(self.store, found)

    def failed(self, exc: Exception) -> WasmFailed:
        text = str(exc)
        return WasmFailed(
            self.name, classify(text, bytes(self.stderr), self.deadline.timed_out), cause(text)
        )

    def call(self, point: str, arg: Lowered, timeout_ms: int, bounds: AnswerBounds) -> Action:
        """Run `point` on `arg`; WasmFailed on a trap, a timeout, a memory overrun or an
        answer over `bounds` (the store is unusable after any of them)."""
        func = self.funcs[point]
        result = ffi.wasmtime_component_val_t()
        self.stderr.clear()
        wall_ms = 2 * timeout_ms + WALL_SLACK_MS
        self.deadline.arm_run(self.store, deadline_ticks(timeout_ms), wall_ms)
        error = ffi.wasmtime_component_func_call(
            ctypes.byref(func._func),
            self.store._context(),
            ctypes.byref(arg.val),
            1,
            ctypes.byref(result),
            1,
        )
        if error:
            raise self.failed(WasmtimeError._from_ptr(error))
        try:
            action = lift_action(result, bounds)
        except AnswerTooLarge as exc:
            raise WasmFailed(self.name, "answer", str(exc)) from None
        finally:
            ffi.wasmtime_component_val_delete(ctypes.byref(result))
        try:
            func.post_return(self.store)
        except (WasmtimeError, wasmtime.Trap) as exc:
            raise self.failed(exc) from None
        return action
