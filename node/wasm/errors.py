"""What can go wrong with a module: it is not one we can run, one call failed, or every
instance of it was busy."""

from __future__ import annotations

from typing import Literal

FailureKind = Literal["trap", "timeout", "memory", "answer"]


class WasmInvalid(ValueError):
    """The bytes are not a component meshgate can run; the message says what to fix."""


class WasmFailed(Exception):
    """One call of a module failed: it trapped, ran past its deadline or out of memory, or
    answered more than the node takes."""

    def __init__(self, module: str, kind: FailureKind, detail: str = "") -> None:
        self.module = module
        self.kind: FailureKind = kind
        self.detail = detail
        words = {
            "trap": "trapped",
            "timeout": "ran past its time limit",
            "memory": "ran out of memory",
            "answer": "answered more than the node takes",
        }
        tail = f": {detail}" if detail else ""
        super().__init__(f"wasm module {module!r} {words[kind]}{tail}")


class WasmBusy(Exception):
    """Every instance of a module stayed busy for the whole wait: the module did nothing
    wrong, so this never counts against its breaker."""

    def __init__(self, module: str, instances: int, wait: float) -> None:
        self.module = module
        super().__init__(
            f"wasm module {module!r} is busy: its {instances} instance(s) stayed in use "
            f"for {wait * 1000:.0f} ms"
        )
