"""Running the modules attached at one point, in order, and applying what they answer: on a
wasm thread, the whole chain in one hand-off, the request lowered once for every module
that sees it unchanged.

`continue` passes on; `reject(status)` stops the chain; `modify` changes the headers
(remove, then set, then add) and the body, and the next module sees the change. A module
that fails (a trap, a timeout, a memory overrun) stops the request with a 500-class error
naming it, unless it was registered with `on_error: "continue"`: then it is skipped. Each
failure counts on the module's breaker; while the breaker is open the module is not called
and counts as failed (so an auth module that keeps trapping never lets requests through).
Neither a body over the size a module may see nor a module busy with other calls says
anything about the module: they fail (or skip) that module without touching its breaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from node.wasm import runtime
from node.wasm.budget import body_budget
from node.wasm.registry import Loaded
from node.wasm.values import Lowered

Header = tuple[str, str]
# (module name, attach point, outcome, seconds): the metrics of one call.
Record = Callable[[str, str, str, float], None]
# What a body over --wasm-max-body-bytes ends the request with, by attach point.
TOO_LARGE = {"OnRequest": 413, "OnResponse": 502}


class ChainStopped(Exception):
    """The chain ended the request: a module rejected it or failed."""

    def __init__(self, module: str, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.module, self.status, self.code = module, status, code


@dataclass
class Edited:
    """What the modules made of a request or response: the headers, the body, the status,
    and which header names they touched (lower-case)."""

    headers: list[Header]
    body: bytes
    status: int | None = None
    touched: set[str] = field(default_factory=set)

    def header_edits(self) -> dict[str, str | None]:
        """Each touched header's final value (repeats joined), or None when removed."""
        edits: dict[str, str | None] = {}
        for name in sorted(self.touched):
            values = [v for n, v in self.headers if n.lower() == name]
            edits[name] = ", ".join(values) if values else None
        return edits


def apply_modify(edited: Edited, action: runtime.Modify) -> None:
    removed = {n.lower() for n in action.headers_remove} | {
        n.lower() for n, _ in action.headers_set
    }
    headers = [(n, v) for n, v in edited.headers if n.lower() not in removed]
    headers += list(action.headers_set) + list(action.headers_add)
    edited.headers = headers
    edited.touched |= removed | {n.lower() for n, _ in action.headers_add}
    if action.body_replace is not None:
        edited.body = bytes(action.body_replace)
    if action.status is not None:
        edited.status = action.status


def run_chain(
    chain: Iterable[Loaded],
    point: str,
    edited: Edited,
    lower: Callable[[Edited], Lowered],
    record: Record,
    max_body: int,
    since: float | None = None,
) -> Edited:
    """Run `chain` at `point` over `edited` (changed in place); ChainStopped on a reject
    or a failure that is not failed open. Blocking: run it on a wasm thread. `since`: when
    the request was handed off (monotonic), from which a busy module's wait counts."""
    handed = _Handed(edited, lower, since)
    try:
        for loaded in chain:
            fits = len(edited.body) <= max_body
            action = _one(loaded, point, edited, handed if fits else None, record, max_body, since)
            if isinstance(action, runtime.Modify):
                apply_modify(edited, action)
                handed.close()  # the next module sees the change
    finally:
        handed.close()
    return edited


class _Handed:
    """What the modules are handed: lowered once a module has taken its instance (a request
    waiting for its first module's instance holds no lowered body), kept for the next
    modules until one changes the request; its body's bytes held in the node's budget
    meanwhile."""

    def __init__(self, edited: Edited, lower: Callable[[Edited], Lowered], since: float | None):
        self.edited, self.lower, self.since = edited, lower, since
        self.lowered: Lowered | None = None
        self.size = 0

    def get(self, runner: runtime.ModuleRunner) -> Lowered:
        if self.lowered is None:
            size = len(self.edited.body)
            since = time.monotonic() if self.since is None else self.since
            body_budget().take(size, runner.name, since + runner.busy_wait, runner.busy_wait)
            try:
                self.lowered = self.lower(self.edited)
            except BaseException:
                body_budget().give(size)
                raise
            self.size = size
        return self.lowered

    def close(self) -> None:
        if self.lowered is not None:
            self.lowered.close()
            self.lowered = None
            body_budget().give(self.size)


def _one(
    loaded: Loaded,
    point: str,
    edited: Edited,
    handed: _Handed | None,
    record: Record,
    max_body: int,
    since: float | None,
) -> runtime.Action | None:
    """Call one module; its action, or None when it was skipped."""
    name, fail_open = loaded.record["name"], loaded.record["on_error"] == "continue"
    if handed is None:  # the body is over what a module may see: never handed to one
        record(name, point, "too_large", 0.0)
        if fail_open:
            return None
        what = "request" if point == "OnRequest" else "worker's answer"
        raise ChainStopped(
            name,
            TOO_LARGE[point],
            "WASM_BODY_TOO_LARGE",
            f"the {what} body is {len(edited.body)} bytes, over the {max_body} that WASM "
            f"module {name!r} may see (--wasm-max-body-bytes)",
        )
    if not loaded.breaker.allow():
        record(name, point, "skipped", 0.0)
        if fail_open:
            return None
        raise ChainStopped(
            name,
            503,
            "WASM_MODULE_UNAVAILABLE",
            f"WASM module {name!r} is turned off on this node after repeated failures "
            "(its circuit breaker is open); try again later",
        )
    started = time.perf_counter()
    try:
        action = loaded.runner.call(point, lambda: handed.get(loaded.runner), since)
    except runtime.WasmFailed as exc:
        loaded.breaker.failed()
        record(name, point, "error", time.perf_counter() - started)
        if fail_open:
            return None
        raise ChainStopped(
            name, 500, "WASM_MODULE_FAILED", f"WASM module {name!r} failed: {exc}"
        ) from None
    except runtime.WasmBusy as exc:
        loaded.breaker.abandoned()  # the module did nothing wrong
        record(name, point, "busy", time.perf_counter() - started)
        if fail_open:
            return None
        raise ChainStopped(name, 503, "WASM_MODULE_BUSY", f"{exc}; try again shortly") from None
    except BaseException:
        loaded.breaker.abandoned()
        raise
    loaded.breaker.succeeded()
    if isinstance(action, runtime.Reject):
        record(name, point, "reject", time.perf_counter() - started)
        raise ChainStopped(
            name, action.status, "WASM_REJECTED", f"rejected by WASM module {name!r}"
        )
    outcome = "modify" if isinstance(action, runtime.Modify) else "continue"
    record(name, point, outcome, time.perf_counter() - started)
    return action


def request_of(edited: Edited, base: runtime.WasmRequest) -> runtime.WasmRequest:
    return replace(base, headers=list(edited.headers), body=edited.body)
