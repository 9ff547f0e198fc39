"""Running the modules attached at one point, in order, and applying what they answer.

`continue` passes on; `reject(status)` stops the chain; `modify` changes the headers
(remove, then set, then add) and the body, and the next module sees the change. A module
that fails (a trap, a timeout, a memory overrun) stops the request with a 500-class error
naming it, unless it was registered with `on_error: "continue"`: then it is skipped. Each
failure counts on the module's breaker; while the breaker is open the module is not called
and counts as failed (so an auth module that keeps trapping never lets requests through).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from node.wasm import runtime
from node.wasm.registry import Loaded

Header = tuple[str, str]
# (module name, attach point, outcome, seconds): the metrics of one call.
Record = Callable[[str, str, str, float], None]


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


async def run_chain(
    chain: Iterable[Loaded],
    point: str,
    edited: Edited,
    call: Callable[[Loaded, Edited], object],
    record: Record,
) -> Edited:
    """Run `chain` at `point` over `edited` (changed in place); ChainStopped on a reject
    or a failure that is not failed open."""
    for loaded in chain:
        name, fail_open = loaded.record["name"], loaded.record["on_error"] == "continue"
        if not loaded.breaker.allow():
            record(name, point, "skipped", 0.0)
            if fail_open:
                continue
            raise ChainStopped(
                name,
                503,
                "WASM_MODULE_UNAVAILABLE",
                f"WASM module {name!r} is turned off on this node after repeated failures "
                "(its circuit breaker is open); try again later",
            )
        started = time.perf_counter()
        try:
            action = await call(loaded, edited)  # type: ignore[misc]
        except runtime.WasmFailed as exc:
            loaded.breaker.failed()
            record(name, point, "error", time.perf_counter() - started)
            if fail_open:
                continue
            raise ChainStopped(
                name, 500, "WASM_MODULE_FAILED", f"WASM module {name!r} failed: {exc}"
            ) from None
        except BaseException:
            loaded.breaker.abandoned()
            raise
        loaded.breaker.succeeded()
        if isinstance(action, runtime.Reject):
            record(name, point, "reject", time.perf_counter() - started)
            raise ChainStopped(
                name, action.status, "WASM_REJECTED", f"rejected by WASM module {name!r}"
            )
        if isinstance(action, runtime.Modify):
            apply_modify(edited, action)
        outcome = "modify" if isinstance(action, runtime.Modify) else "continue"
        record(name, point, outcome, time.perf_counter() - started)
    return edited


def request_of(edited: Edited, base: runtime.WasmRequest) -> runtime.WasmRequest:
    return replace(base, headers=list(edited.headers), body=edited.body)
