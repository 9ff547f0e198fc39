"""The WASM chain on one node: order of effects, reject, failures and fail-open, the
per-module breaker, and the compiled-artifact cache a restart reads instead of compiling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from node.wasm import runtime
from node.wasm.artifacts import ArtifactCache
from node.wasm.breaker import CLOSED, HALF_OPEN, OPEN, ModuleBreaker
from node.wasm.chain import ChainStopped, Edited, apply_modify, run_chain
from node.wasm.registry import Loaded
from tests.wasm_components import module_bytes


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def loaded(name: str, answer: Any, on_error: str = "fail", failures: int = 2) -> Loaded:
    record = {"name": name, "on_error": on_error}
    return Loaded(record, answer, ModuleBreaker(failures, 10.0))


async def call(module: Loaded, _: Edited) -> runtime.Action:
    answer = module.runner  # a test's stand-in: the action, or the failure to raise
    if isinstance(answer, BaseException):
        raise answer
    return answer  # type: ignore[no-any-return]


def run(chain: list[Loaded], edited: Edited | None = None) -> tuple[Edited, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    edited = edited or Edited([("x-drop", "1"), ("X-Keep", "2")], b"body")
    asyncio.run(
        run_chain(chain, "OnRequest", edited, call, lambda m, _p, o, _s: seen.append((m, o)))
    )
    return edited, seen


def test_modify_removes_then_sets_then_adds_and_the_next_module_sees_it() -> None:
    edited = Edited([("x-drop", "1"), ("X-Keep", "2"), ("x-set", "old")], b"body")
    apply_modify(
        edited,
        runtime.Modify(
            headers_set=[("x-set", "new")],
            headers_add=[("x-keep", "3")],
            headers_remove=["X-DROP"],
            body_replace=b"new body",
        ),
    )
    assert edited.headers == [("X-Keep", "2"), ("x-set", "new"), ("x-keep", "3")]
    assert edited.body == b"new body"
    assert edited.header_edits() == {"x-drop": None, "x-keep": "2, 3", "x-set": "new"}


def test_reject_stops_the_chain_naming_the_module() -> None:
    chain = [loaded("a", runtime.Continue()), loaded("b", runtime.Reject(401)), loaded("c", None)]
    with pytest.raises(ChainStopped) as stopped:
        run(chain)
    assert (stopped.value.status, stopped.value.code, stopped.value.module) == (
        401,
        "WASM_REJECTED",
        "b",
    )


def test_a_failure_fails_the_request_unless_the_module_fails_open() -> None:
    trap = runtime.WasmFailed("t", "trap", "unreachable")
    with pytest.raises(ChainStopped) as stopped:
        run([loaded("t", trap)])
    assert stopped.value.status == 500 and "'t'" in str(stopped.value)
    _, seen = run([loaded("t", trap, on_error="continue"), loaded("ok", runtime.Continue())])
    assert seen == [("t", "error"), ("ok", "continue")]


def test_the_breaker_turns_a_failing_module_off_then_probes_it() -> None:
    clock = Clock()
    breaker = ModuleBreaker(2, 10.0, clock)
    breaker.failed()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.failed()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 10.0
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.failed()
    assert breaker.state == OPEN and breaker.trips == 2
    clock.now = 20.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.allow()


def test_an_open_breaker_answers_503_or_skips_a_fail_open_module() -> None:
    module = loaded("t", runtime.Continue(), failures=1)
    module.breaker.failed()
    with pytest.raises(ChainStopped) as stopped:
        run([module])
    assert (stopped.value.status, stopped.value.code) == (503, "WASM_MODULE_UNAVAILABLE")
    module.record["on_error"] = "continue"
    assert run([module])[1] == [("t", "skipped")]


def test_a_restart_loads_the_cached_artifact_instead_of_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    component = tmp_path / "blob"
    component.write_bytes(module_bytes("empty"))
    cache = ArtifactCache(tmp_path / "artifacts")
    first = cache.load("a" * 64, component)
    assert first.exports == {"OnRequest"}
    assert [p.name for p in cache.folder.iterdir()] == [runtime.artifact_key("a" * 64)]

    def no_compiling(_: bytes) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(runtime, "compile_component", no_compiling)
    assert ArtifactCache(tmp_path / "artifacts").load("a" * 64, component).exports == {"OnRequest"}
    cache.forget("a" * 64)
    assert list(cache.folder.iterdir()) == []


def test_a_probe_that_ends_without_a_verdict_does_not_jam_the_breaker() -> None:
    """A half-open breaker's probe that is cancelled or meets a host error (not a module
    failure) may be sent again: the module is not refused for good."""
    clock = Clock()
    for ending in (asyncio.CancelledError(), UnicodeEncodeError("utf-8", "\udcff", 0, 1, "x")):
        module = Loaded({"name": "t", "on_error": "fail"}, ending, ModuleBreaker(1, 10.0, clock))
        module.breaker.failed()
        clock.now += 10.0
        with pytest.raises(type(ending)):
            run([module])
        assert module.breaker.state == HALF_OPEN and module.breaker.allow()


def test_a_header_that_is_not_utf_8_reaches_a_module_as_a_replacement_character() -> None:
    from node.wasm.convert import request_value

    request = runtime.WasmRequest(
        "POST", "/v1/chat/completions", "", [("x-odd", "a\udcffb")], b"", "r1", 0
    )
    (header,) = request_value(request).headers
    assert header.value == "a\ufffdb"


def test_a_module_never_replaces_the_workers_credential_or_the_framing() -> None:
    from node.proxy.forward import with_edits

    edits: dict[str, str | None] = {
        "authorization": "Bearer evil",
        "content-length": "2",
        "transfer-encoding": "chunked",
        "host": "elsewhere",
        "x-split": "a\r\nx-evil: 1",
        "x-fine": "yes",
        "x-gone": None,
    }
    client = {"Authorization": "Bearer client", "X-Gone": "1", "Content-Type": "application/json"}
    sent = with_edits(client, edits, {"Authorization": "Bearer worker"})
    assert sent == {
        "Content-Type": "application/json",
        "x-fine": "yes",
        "Authorization": "Bearer worker",
    }


def test_a_module_not_ready_on_this_node_holds_requests_back() -> None:
    """An auth module still compiling (or failed) here never lets a request pass unchecked;
    a module that may fail open is skipped meanwhile."""
    from node.errors import ApiError
    from node.wasm.hooks import WasmHooks
    from node.wasm.registry import WasmRegistry

    registry = WasmRegistry.__new__(WasmRegistry)  # only its records: nothing loaded yet
    base = {"enabled": True, "attach_points": ["OnRequest"]}
    registry._known = {
        "m1": {**base, "name": "auth", "on_error": "fail"},
        "m2": {**base, "name": "audit", "on_error": "continue"},
        "m3": {**base, "name": "off", "on_error": "fail", "enabled": False},
    }
    registry._loaded = {}
    assert registry.not_ready("OnRequest") == ["auth"]
    assert registry.not_ready("OnResponse") == []
    hooks = WasmHooks(registry, lambda *_: None)
    with pytest.raises(ApiError) as refused:
        asyncio.run(hooks.on_request(None))  # type: ignore[arg-type]
    assert refused.value.status == 503 and refused.value.code == "WASM_MODULE_UNAVAILABLE"
    assert "'auth' is not ready" in refused.value.message
