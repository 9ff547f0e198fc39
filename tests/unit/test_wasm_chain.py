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


class Answers:
    """A runner's stand-in: answers `answer` (or raises it) and counts what it was handed."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[object] = []

    name, busy_wait = "stand-in", 0.0

    def call(self, _point: str, lowered: Any, _since: float | None = None) -> runtime.Action:
        if isinstance(self.answer, runtime.WasmBusy):
            raise self.answer  # no instance taken: nothing lowered
        self.seen.append(lowered())  # lowered once an instance is taken
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[no-any-return]


class Lowering:
    """Stands in for lowering: each value names the body it was made from, and is closed."""

    def __init__(self) -> None:
        self.made: list[Lowering.Value] = []

    class Value:
        def __init__(self, body: bytes) -> None:
            self.body, self.closed = body, False

        def close(self) -> None:
            self.closed = True

    def __call__(self, edited: Edited) -> Any:
        self.made.append(Lowering.Value(edited.body))
        return self.made[-1]


def loaded(name: str, answer: Any, on_error: str = "fail", failures: int = 2) -> Loaded:
    record = {"name": name, "on_error": on_error}
    return Loaded(record, Answers(answer), ModuleBreaker(failures, 10.0))  # type: ignore[arg-type]


def run(
    chain: list[Loaded],
    edited: Edited | None = None,
    lower: Lowering | None = None,
    max_body: int = 1024,
    point: str = "OnRequest",
) -> tuple[Edited, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    edited = edited or Edited([("x-drop", "1"), ("X-Keep", "2")], b"body")
    record = lambda m, _p, o, _s: seen.append((m, o))  # noqa: E731
    run_chain(chain, point, edited, lower or Lowering(), record, max_body)
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
        record = {"name": "t", "on_error": "fail"}
        module = Loaded(record, Answers(ending), ModuleBreaker(1, 10.0, clock))  # type: ignore[arg-type]
        module.breaker.failed()
        clock.now += 10.0
        with pytest.raises(type(ending)):
            run([module])
        assert module.breaker.state == HALF_OPEN and module.breaker.allow()


def test_a_header_that_is_not_utf_8_reaches_a_module_as_a_replacement_character() -> None:
    from node.wasm.convert import sanitized

    request = runtime.WasmRequest(
        "POST", "/v1/chat/completions", "", [("x-odd", "a\udcffb")], b"", "r1", 0
    )
    assert sanitized(request).headers == [("x-odd", "a\ufffdb")]


def test_a_module_never_replaces_the_workers_credential_or_the_framing() -> None:
    from node.proxy.forward import with_edits

    edits: dict[str, str | None] = {
        "authorization": "Bearer evil",
        "content-length": "2",
        "transfer-encoding": "chunked",
        "host": "elsewhere",
        "x-split": "a\r\nx-evil: 1",
        "x-name\r\nx-evil": "1",
        "content-length ": "5",  # a second Content-Length to a lenient worker
        "transfer-encoding\t": "chunked",
        "x name": "1",
        "x:y": "1",
        "x-é": "1",
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
    hooks = WasmHooks(registry, lambda *_: None, 1024)
    with pytest.raises(ApiError) as refused:
        asyncio.run(hooks.on_request(None))  # type: ignore[arg-type]
    assert refused.value.status == 503 and refused.value.code == "WASM_MODULE_UNAVAILABLE"
    assert "'auth' is not ready" in refused.value.message


def test_the_request_is_lowered_once_until_a_module_changes_it() -> None:
    modify = runtime.Modify(body_replace=b"new")
    chain = [
        loaded("a", runtime.Continue()),
        loaded("b", modify),
        loaded("c", runtime.Continue()),
        loaded("d", runtime.Continue()),
    ]
    lower = Lowering()
    run(chain, lower=lower)
    assert [value.body for value in lower.made] == [b"body", b"new"]
    assert all(value.closed for value in lower.made)
    runners = [m.runner for m in chain]
    assert [len(r.seen) for r in runners] == [1, 1, 1, 1]  # type: ignore[attr-defined]
    assert runners[0].seen == runners[1].seen != runners[2].seen == runners[3].seen  # type: ignore[attr-defined]


def test_a_body_over_the_bound_is_never_handed_to_a_module_nor_counted_on_its_breaker() -> None:
    module = loaded("big", runtime.Continue(), failures=1)
    lower = Lowering()
    big = Edited([], b"x" * 1025)
    with pytest.raises(ChainStopped) as stopped:
        run([module], big, lower)
    assert (stopped.value.status, stopped.value.code) == (413, "WASM_BODY_TOO_LARGE")
    assert "1025 bytes, over the 1024" in str(stopped.value) and "'big'" in str(stopped.value)
    with pytest.raises(ChainStopped) as stopped:
        run([module], big, lower, point="OnResponse")
    assert (stopped.value.status, stopped.value.code) == (502, "WASM_BODY_TOO_LARGE")
    assert "worker's answer body is 1025 bytes" in str(stopped.value)
    module.record["on_error"] = "continue"
    assert run([module], big, lower)[1] == [("big", "too_large")]
    assert lower.made == [] and module.runner.seen == []  # type: ignore[attr-defined]
    assert module.breaker.state == CLOSED and module.breaker.in_a_row == 0
    assert run([module], Edited([], b"x" * 1024))[1] == [("big", "continue")]


def test_a_busy_module_answers_503_and_never_trips_its_breaker() -> None:
    module = loaded("busy", runtime.WasmBusy("busy", 2, 1.0), failures=1)
    for _ in range(3):
        with pytest.raises(ChainStopped) as stopped:
            run([module])
        assert (stopped.value.status, stopped.value.code) == (503, "WASM_MODULE_BUSY")
    assert "'busy' is busy" in str(stopped.value)
    assert module.breaker.state == CLOSED and module.breaker.in_a_row == 0
    module.record["on_error"] = "continue"
    assert run([module])[1] == [("busy", "busy")]
