"""Review 15's attacks on the WASM runtime, run for real: a module that sleeps in a WASI
host call (on a call, or in its start function) is stopped as a timeout and counts on its
breaker; every call has a wall-clock cap besides its run time; failed instances are freed;
a refill that raises anything retries; a registration that cannot start is refused; a
call lowers its body only once it holds an instance, and body bytes in flight are capped."""

from __future__ import annotations

import gc
import threading
import time
from itertools import count

import pytest
import wasmtime

from node.wasm import instance as instance_module
from node.wasm.breaker import HALF_OPEN, OPEN, ModuleBreaker
from node.wasm.budget import ByteBudget, body_budget
from node.wasm.chain import ChainStopped, Edited, run_chain
from node.wasm.convert import lowered_request
from node.wasm.intake import IntakeError, check
from node.wasm.pool import InstancePool
from node.wasm.registry import Loaded
from node.wasm.runtime import (
    Continue,
    Limits,
    ModuleRunner,
    RunnerSettings,
    WasmBusy,
    WasmFailed,
    WasmRequest,
    compile_component,
)
from node.wasm.values import Lowered
from tests.support import wait_for
from tests.wasm_components import module_bytes, poller, sleeper

REQ = WasmRequest("POST", "/v1/chat/completions")
MINUTE_NS = 60 * 10**9


def live_stores() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, wasmtime.Store))


@pytest.mark.timeout(30)
def test_a_module_sleeping_in_wasi_times_out_trips_its_breaker_and_frees_its_probe() -> None:
    runner = ModuleRunner(compile_component(sleeper(MINUTE_NS)), "sleeper", Limits(timeout_ms=50))
    with pytest.raises(WasmFailed, match="may not wait in a WASI host call") as failed:
        runner.call("OnRequest", lowered_request(REQ))
    assert failed.value.kind == "timeout"
    loaded = Loaded({"name": "sleeper", "on_error": "fail"}, runner, ModuleBreaker(2, 0.0))
    for _ in range(2):
        with pytest.raises(ChainStopped) as stopped:
            run_chain(
                [loaded],
                "OnRequest",
                Edited([], b""),
                lambda _: lowered_request(REQ),
                lambda *_: None,
                1024,
            )
        assert stopped.value.code == "WASM_MODULE_FAILED"
    assert loaded.breaker.state == OPEN and loaded.breaker.trips == 1
    # Half-open (no cooldown): the probe is a sleeping call, which ends at once and frees it.
    assert loaded.breaker.allow() and loaded.breaker.state == HALF_OPEN
    with pytest.raises(WasmFailed):
        runner.call("OnRequest", lowered_request(REQ))
    loaded.breaker.failed()
    assert loaded.breaker.state == OPEN and loaded.breaker.allow()  # a new probe may go


@pytest.mark.timeout(30)
def test_a_module_polling_in_wasi_times_out() -> None:
    runner = ModuleRunner(compile_component(poller()), "poller")
    with pytest.raises(WasmFailed, match=r"wasi:io/poll#poll") as failed:
        runner.call("OnRequest", lowered_request(REQ))
    assert failed.value.kind == "timeout"


@pytest.mark.timeout(30)
def test_a_start_function_that_sleeps_fails_instantiation() -> None:
    compiled = compile_component(sleeper(MINUTE_NS, in_start=True))
    with pytest.raises(WasmFailed, match="may not wait") as failed:
        ModuleRunner(compiled, "start-sleeper")
    assert failed.value.kind == "timeout"


@pytest.mark.timeout(30)
def test_a_call_stops_at_its_wall_clock_cap_with_run_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 10 s run time, but a 50 ms wall-clock cap: the cap ends the call.
    monkeypatch.setattr(instance_module, "WALL_SLACK_MS", 50 - 2 * 10_000)
    runner = ModuleRunner(
        compile_component(module_bytes("loop")),
        "loop",
        Limits(timeout_ms=10_000),
        settings=RunnerSettings(instances=1),
    )
    (made,) = runner._pool._idle
    with pytest.raises(WasmFailed) as failed:
        runner.call("OnRequest", lowered_request(REQ))
    assert failed.value.kind == "timeout"
    assert made.deadline._left > 0  # ticks of run time were left: the cap fired


@pytest.mark.timeout(60)
def test_failed_instances_are_freed() -> None:
    runner = ModuleRunner(compile_component(module_bytes("trap")), "trap")
    pool = runner._pool
    before = live_stores()
    for _ in range(20):
        with pytest.raises(WasmFailed):
            runner.call("OnRequest", lowered_request(REQ))
        wait_for(lambda: len(pool._idle) == 2, timeout=10, what="the pool refilled")
    assert live_stores() <= before  # 20 stores were dropped: none may stay


@pytest.mark.timeout(30)
def test_a_refill_that_raises_anything_retries_until_an_instance_is_made() -> None:
    calls = count()
    failing = threading.Event()

    def make() -> object:
        n = next(calls)
        if failing.is_set() and n < 5:
            raise RuntimeError("not a WasmFailed")
        return object()

    pool: InstancePool[object] = InstancePool(make, 1, 0.05, "odd")  # makes call 0
    pool.take()
    failing.set()
    pool.drop()  # calls 1-4 raise, 5 makes it
    wait_for(lambda: len(pool._idle) == 1, timeout=20, what="the instance made again")
    assert not pool._refilling and next(calls) == 6
    # One that keeps raising is given up after a few tries (the refill thread serves every
    # module): a call then fails with why, rather than wait as busy for good.
    pool.take()
    calls = count()  # from 0 again: calls 0-4 raise, and the pool gives up
    pool.drop()
    wait_for(lambda: not pool._refilling, timeout=20, what="the refill given up")
    with pytest.raises(WasmFailed, match="not a WasmFailed"):
        pool.take()


def test_a_component_that_cannot_start_under_its_limits_is_refused() -> None:
    data = module_bytes("empty")
    check(data, None, ["OnRequest"], "wasm_base64", {"timeout_ms": 50, "memory_bytes": 1 << 20})
    with pytest.raises(IntakeError, match="cannot start") as refused:
        check(data, None, ["OnRequest"], "wasm_base64", {"timeout_ms": 50, "memory_bytes": 1024})
    assert refused.value.param == "limits"


def test_a_call_that_waits_for_an_instance_lowers_nothing() -> None:
    runner = ModuleRunner(
        compile_component(module_bytes("empty")),
        "empty",
        settings=RunnerSettings(instances=1, busy_wait=0.01),
    )
    held = runner._pool.take()
    lowered: list[object] = []

    def lower() -> Lowered:
        lowered.append(1)
        return lowered_request(REQ)

    with pytest.raises(WasmBusy):
        runner.call("OnRequest", lower)
    assert lowered == []
    runner._pool.give(held)
    assert runner.call("OnRequest", lambda: lowered_request(REQ)) == Continue()


def test_body_bytes_in_flight_are_capped_and_a_call_over_waits_then_is_busy() -> None:
    budget = ByteBudget(10)
    budget.take(8, "a", time.monotonic(), 0.0)
    with pytest.raises(WasmBusy, match="found no room"):
        budget.take(4, "b", time.monotonic(), 0.0)
    budget.take(2, "c", time.monotonic(), 0.0)  # fits beside the 8
    budget.give(8)
    budget.give(2)
    budget.take(20, "d", time.monotonic(), 0.0)  # over the whole budget, alone: let through
    assert budget.used == 20
    budget.give(20)
    assert body_budget().used == 0  # every chain run above the node's budget gave it back
