"""Running middleware components: a pool of ready instances per module, calls on worker
threads, a deadline and store limits on every call, bounds on what goes in and comes out.

The event loop never waits for a module's run: wasmtime's Python API calls into the
native library through ctypes, which releases the GIL for the whole wasm run, so a
call on a worker thread leaves the loop free. Each run is bounded by its epoch deadline.

The public interface of the package is here; the parts live in the sibling modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from node.wasm.component import (
    CompiledComponent,
    artifact_key,
    compile_component,
    deserialize,
    digest_of,
    serialize,
)
from node.wasm.convert import lowered_request, lowered_response
from node.wasm.errors import WasmBusy, WasmFailed, WasmInvalid
from node.wasm.instance import Instance
from node.wasm.pool import InstancePool
from node.wasm.types import (
    Action,
    Continue,
    Limits,
    Modify,
    Reject,
    WasmRequest,
    WasmResponse,
)
from node.wasm.values import AnswerBounds, Lowered

__all__ = [
    "Action",
    "AnswerBounds",
    "CompiledComponent",
    "Continue",
    "Limits",
    "Modify",
    "ModuleRunner",
    "Reject",
    "RunnerSettings",
    "WasmBusy",
    "WasmFailed",
    "WasmInvalid",
    "WasmRequest",
    "WasmResponse",
    "artifact_key",
    "compile_component",
    "deserialize",
    "digest_of",
    "in_thread",
    "serialize",
]

# Threads that run calls (a whole chain of modules per hand-off). A module runs at most
# its pool's size of calls at once; this bounds the calls of all modules together.
WORKERS = 8
T = TypeVar("T")


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="wasm")


async def in_thread(work: Callable[[], T]) -> T:
    """`work` on a wasm thread: the one hand-off of a call, or of a whole chain."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), work)


@dataclass(frozen=True)
class RunnerSettings:
    """How a module's calls run, beyond its own limits (the --wasm-* settings)."""

    instances: int = 2  # made ready up front; also the calls of one module at once
    busy_wait: float = 1.0  # seconds a call waits for an instance, then fails as busy
    bounds: AnswerBounds = field(default_factory=AnswerBounds)


DEFAULT_RUNNER = RunnerSettings()


class ModuleRunner:
    """Calls one compiled module's OnRequest/OnResponse exports within `limits`.

    `settings.instances` calls run at once, each on its own pre-instantiated store (all
    made here: build it off the loop); more wait up to `settings.busy_wait` seconds, then
    fail as WasmBusy. `settings.bounds` limit what an answer may carry."""

    def __init__(
        self,
        compiled: CompiledComponent,
        name: str,
        limits: Limits | None = None,
        *,
        settings: RunnerSettings = DEFAULT_RUNNER,
    ) -> None:
        self.compiled = compiled
        self.name = name
        self.limits = limits or Limits()
        self.bounds = settings.bounds
        self.busy_wait = settings.busy_wait
        self._pool: InstancePool[Instance] = InstancePool(
            lambda: Instance(compiled, name, self.limits),
            settings.instances,
            settings.busy_wait,
            name,
        )

    @property
    def exports(self) -> frozenset[str]:
        return self.compiled.exports

    def call(
        self, point: str, arg: Lowered | Callable[[], Lowered], since: float | None = None
    ) -> Action:
        """One call on the calling thread (a wasm thread: it may wait for an instance, up
        to the busy wait counted from `since`, the monotonic time the request was handed
        off). `arg` may be lowered only once an instance is taken: a call that waits for
        one then holds no lowered body."""
        if point not in self.compiled.exports:
            raise ValueError(f"wasm module {self.name!r} does not export {point}")
        instance = self._pool.take(since)
        try:
            lowered = arg() if callable(arg) else arg
        except BaseException:
            self._pool.give(instance)  # not run: it is as good as it was
            raise
        try:
            action = instance.call(point, lowered, self.limits.timeout_ms, self.bounds)
        except BaseException:
            self._pool.drop()  # its store may be mid-run or out of memory
            raise
        self._pool.give(instance)
        return action

    async def on_request(self, req: WasmRequest) -> Action:
        return await in_thread(lambda: self._once("OnRequest", lowered_request(req)))

    async def on_response(self, resp: WasmResponse) -> Action:
        return await in_thread(lambda: self._once("OnResponse", lowered_response(resp)))

    def _once(self, point: str, arg: Lowered) -> Action:
        try:
            return self.call(point, arg)
        finally:
            arg.close()
