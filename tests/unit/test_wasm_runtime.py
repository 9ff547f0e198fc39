"""The WASM runtime with real components (tests/wasm_components.py): each module's
effect, the deadline, the memory cap, traps, concurrency, artifacts and bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any, TypeVar

import pytest
import wasmtime

from node.wasm.pool import InstancePool
from node.wasm.runtime import (
    AnswerBounds,
    CompiledComponent,
    Continue,
    Limits,
    Modify,
    ModuleRunner,
    Reject,
    RunnerSettings,
    WasmBusy,
    WasmFailed,
    WasmInvalid,
    WasmRequest,
    WasmResponse,
    artifact_key,
    compile_component,
    deserialize,
    digest_of,
    serialize,
)
from tests.support import wait_for
from tests.wasm_components import (
    API_KEY,
    MISSING_FUNC,
    MODULES,
    NO_EXPORTS,
    WRONG_TYPES,
    build,
    module_bytes,
)

REQ = WasmRequest(
    "POST",
    "/v1/chat/completions",
    "stream=false",
    [("content-type", "application/json")],
    b"{}",
    "req-1",
    1_700_000_000_000,
)


Compiled = dict[str, CompiledComponent]
T = TypeVar("T")


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return {name: compile_component(module_bytes(name)) for name in MODULES}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def with_headers(*headers: tuple[str, str]) -> WasmRequest:
    return WasmRequest(
        REQ.method,
        REQ.path,
        REQ.query,
        [*REQ.headers, *headers],
        REQ.body,
        REQ.request_id,
        REQ.now_epoch_ms,
    )


def test_auth_rejects_without_the_key(compiled: Compiled) -> None:
    auth = ModuleRunner(compiled["auth"], "auth")
    assert run(auth.on_request(REQ)) == Reject(401)
    assert run(auth.on_request(with_headers(("x-api-key", "wrong")))) == Reject(401)
    assert run(auth.on_request(with_headers(("x-api-key", API_KEY)))) == Continue()
    assert run(auth.on_response(WasmResponse(200))) == Continue()


def test_inject_modifies_headers_and_sees_the_request(compiled: Compiled) -> None:
    action = run(ModuleRunner(compiled["inject"], "inject").on_request(REQ))
    assert action == Modify(
        status=None,
        headers_set=[("x-injected", "yes")],
        headers_add=[("x-added", "1")],
        headers_remove=["x-drop"],
        body_replace=REQ.path.encode(),
    )


def test_status_map_on_response_only(compiled: Compiled) -> None:
    mapper = ModuleRunner(compiled["status_map"], "status_map")
    assert mapper.exports == frozenset({"OnResponse"})
    assert run(mapper.on_response(WasmResponse(500, [("a", "b")], b"x"))) == Modify(status=503)
    assert run(mapper.on_response(WasmResponse(200))) == Continue()
    with pytest.raises(ValueError, match="does not export OnRequest"):
        run(mapper.on_request(REQ))


def test_loop_times_out_and_the_next_call_works(compiled: Compiled) -> None:
    looping = ModuleRunner(compiled["loop"], "loop", Limits(timeout_ms=50))
    started = time.monotonic()
    with pytest.raises(WasmFailed, match="'loop' ran past its time limit") as failed:
        run(looping.on_request(REQ))
    took = time.monotonic() - started
    assert failed.value.kind == "timeout" and failed.value.module == "loop"
    assert 0.045 <= took < 1.0, took
    assert run(looping.on_response(WasmResponse(200))) == Continue()  # a fresh store


def test_allocating_module_hits_the_memory_cap(compiled: Compiled) -> None:
    hog = ModuleRunner(compiled["allocate"], "allocate", Limits(memory_bytes=8 * 1024 * 1024))
    with pytest.raises(WasmFailed, match="'allocate' ran out of memory") as failed:
        run(hog.on_request(REQ))
    assert failed.value.kind == "memory"
    assert run(hog.on_response(WasmResponse(200))) == Continue()
    with pytest.raises(WasmFailed, match="exceeds memory limits") as failed:
        ModuleRunner(compiled["auth"], "auth", Limits(memory_bytes=1000))  # under one page
    assert failed.value.kind == "memory"


def test_trap_names_the_module(compiled: Compiled) -> None:
    trapping = ModuleRunner(compiled["trap"], "trapper")
    with pytest.raises(WasmFailed, match=r"'trapper' trapped: wasm trap: .*unreachable") as failed:
        run(trapping.on_request(REQ))
    assert failed.value.kind == "trap"
    assert run(trapping.on_response(WasmResponse(200))) == Continue()


def test_concurrent_calls_and_a_free_event_loop(compiled: Compiled) -> None:
    auth = ModuleRunner(compiled["auth"], "auth", settings=RunnerSettings(instances=3))
    looping = ModuleRunner(compiled["loop"], "loop")
    keyed = with_headers(("x-api-key", API_KEY))

    async def scenario() -> tuple[list[object], int]:
        ticks = 0
        stuck = asyncio.ensure_future(looping.on_request(REQ))
        while not stuck.done():  # the loop keeps turning while the module spins
            ticks += 1
            await asyncio.sleep(0.001)
        results = await asyncio.gather(
            *(auth.on_request(keyed if i % 2 else REQ) for i in range(24)),
            stuck,
            return_exceptions=True,
        )
        return list(results), ticks

    results, ticks = run(scenario())
    assert ticks >= 5
    assert results[:24] == [Continue() if i % 2 else Reject(401) for i in range(24)]
    assert isinstance(results[24], WasmFailed) and results[24].kind == "timeout"


def test_artifact_round_trip(compiled: Compiled) -> None:
    data = module_bytes("auth")
    key = artifact_key(digest_of(data))
    assert key == f"{digest_of(data)}.wasmtime-{version('wasmtime')}.cwasm"
    loaded = deserialize(serialize(compiled["auth"]))
    assert loaded.exports == compiled["auth"].exports
    assert run(ModuleRunner(loaded, "auth").on_request(REQ)) == Reject(401)
    with pytest.raises(WasmInvalid, match="not a compiled artifact"):
        deserialize(b"\0asm garbage")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"hello", "not a WebAssembly binary"),
        (bytes(wasmtime.wat2wasm("(module)")), "a core WebAssembly module, not a component"),
        (NO_EXPORTS, "exports neither smg:gateway/middleware-on-request nor"),
        (module_bytes("auth")[:200], "not a valid component"),
        (
            bytes(
                wasmtime.wat2wasm(
                    '(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))'
                )
            ),
            "imports wasi:http/outgoing-handler",
        ),
        (WRONG_TYPES, r"on-request does not have the smg:gateway types: it is func\(req:string\)"),
        (MISSING_FUNC, "middleware-on-request does not export the function on-request"),
    ],
    ids=[
        "not-wasm",
        "core-module",
        "no-exports",
        "truncated",
        "unknown-import",
        "wrong-types",
        "missing-func",
    ],
)
def test_bad_components_are_invalid(data: bytes, says: str) -> None:
    with pytest.raises(WasmInvalid, match=says):
        compile_component(data)


def test_wat_build_matches_the_wit_world() -> None:
    # Both interfaces of one component, as SMG's world has them.
    compiled = compile_component(build(MODULES["auth"][0]))
    assert compiled.interfaces == {
        "OnRequest": "smg:gateway/middleware-on-request",
        "OnResponse": "smg:gateway/middleware-on-response",
    }


def test_a_large_body_costs_the_module_none_of_its_time(compiled: Compiled) -> None:
    """Copying a 256 KiB body in is the host's work: the module's 50 ms are its own run."""
    empty = ModuleRunner(compiled["empty"], "empty")
    big = WasmRequest("POST", "/v1/chat/completions", "", [], b"x" * 256 * 1024, "r", 0)
    for _ in range(3):
        assert run(empty.on_request(big)) == Continue()
    looping = ModuleRunner(compiled["loop"], "loop", Limits(timeout_ms=50))
    with pytest.raises(WasmFailed) as failed:
        run(looping.on_request(big))  # a module that runs on is still stopped
    assert failed.value.kind == "timeout"


def test_an_answer_over_the_bounds_fails_naming_the_module(compiled: Compiled) -> None:
    small = RunnerSettings(bounds=AnswerBounds(body_bytes=64 * 1024))
    flood = ModuleRunner(compiled["header_flood"], "flood")
    with pytest.raises(WasmFailed, match="'flood' answered more than the node takes: 10000 header"):
        run(flood.on_request(REQ))
    body = ModuleRunner(compiled["body_flood"], "body", settings=small)

    def replacing(size: int) -> WasmRequest:
        return WasmRequest("POST", "/", "", [], b"", "r", size)

    assert run(body.on_request(replacing(1000))) == Modify(body_replace=b"b" * 1000)
    with pytest.raises(WasmFailed, match="a replaced body of 65537 bytes, over 65536") as failed:
        run(body.on_request(replacing(64 * 1024 + 1)))
    assert failed.value.kind == "answer"
    # 8 MiB: wasmtime itself refuses to copy that much out (its hostcall fuel), so the node
    # never holds it; 100 MiB cannot even be built in the module's 64 MiB of memory.
    with pytest.raises(WasmFailed, match="too much data is being copied") as failed:
        run(body.on_request(replacing(8 * 1024 * 1024)))
    assert failed.value.kind == "answer"
    with pytest.raises(WasmFailed) as failed:
        run(body.on_request(replacing(100 * 1024 * 1024)))
    assert failed.value.kind == "memory"


def test_tables_are_capped_like_memory(compiled: Compiled) -> None:
    grow = compiled["table_grow"]
    assert run(ModuleRunner(grow, "t").on_request(REQ)) == Reject(100)  # 100,000 elements
    assert run(ModuleRunner(grow, "t", Limits(table_elements=5000)).on_request(REQ)) == Reject(5)
    with pytest.raises(WasmFailed, match="memory count too high") as failed:
        ModuleRunner(compiled["auth"], "auth", Limits(memories=0))
    assert failed.value.kind == "memory"


def test_instances_are_made_up_front_and_again_in_the_background(compiled: Compiled) -> None:
    made: list[str] = []
    real = ModuleRunner(compiled["trap"], "trap", settings=RunnerSettings(instances=2))
    maker = real._pool._make

    def counting() -> object:
        made.append(threading.current_thread().name)
        return maker()

    real._pool._make = counting  # type: ignore[method-assign]
    for _ in range(4):  # each failure drops its instance; a new one is made off the call
        with pytest.raises(WasmFailed):
            run(real.on_request(REQ))
        assert run(real.on_response(WasmResponse(200))) == Continue()
    wait_for(lambda: len(made) == 4, timeout=10, what="4 instances made again")
    assert all(name.startswith("wasm-refill") for name in made), made


def test_a_module_runs_its_instances_calls_at_once_and_the_rest_fail_busy(
    compiled: Compiled,
) -> None:
    one = RunnerSettings(instances=1, busy_wait=0.02)
    looping = ModuleRunner(compiled["loop"], "loop", Limits(timeout_ms=300), settings=one)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(looping.on_request(REQ))
        while looping._pool._idle:  # until the first call holds the only instance
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(looping.on_request(REQ))
        return list(await asyncio.gather(first, second, return_exceptions=True))

    first, second = run(scenario())
    assert isinstance(first, WasmFailed) and first.kind == "timeout"
    assert isinstance(second, WasmBusy) and "'loop' is busy" in str(second)


def test_threads_instantiate_at_once_without_a_lock(compiled: Compiled) -> None:
    keyed = with_headers(("x-api-key", API_KEY))

    def make_and_call(_: int) -> object:
        runner = ModuleRunner(compiled["auth"], "auth", settings=RunnerSettings(instances=3))
        return run(runner.on_request(keyed))

    with ThreadPoolExecutor(max_workers=4) as threads:
        assert list(threads.map(make_and_call, range(8))) == [Continue()] * 8


def test_the_busy_wait_counts_from_the_hand_off() -> None:
    """A request that already queued for a thread longer than the wait fails at once."""
    pool = InstancePool(object, 1, 5.0, "m")
    held = pool.take()
    started = time.monotonic()
    with pytest.raises(WasmBusy):
        pool.take(since=started - 10)
    assert time.monotonic() - started < 1.0
    pool.give(held)
    assert pool.take(since=started - 10) is held  # an idle instance is never refused
