"""The WASM runtime with real components (tests/wasm_components.py): each module's
effect, the deadline, the memory cap, traps, concurrency, artifacts and bad input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from importlib.metadata import version
from typing import Any, TypeVar

import pytest
import wasmtime

from node.wasm.runtime import (
    CompiledComponent,
    Continue,
    Limits,
    Modify,
    ModuleRunner,
    Reject,
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
    auth = ModuleRunner(compiled["auth"], "auth", pool_size=3)
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
