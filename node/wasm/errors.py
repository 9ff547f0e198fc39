"""What can go wrong with a module: it is not one we can run, or one call failed."""

from __future__ import annotations

from typing import Literal

FailureKind = Literal["trap", "timeout", "memory"]


class WasmInvalid(ValueError):
    """The bytes are not a component meshgate can run; the message says what to fix."""


class WasmFailed(Exception):
    """One call of a module failed: it trapped, ran past its deadline or out of memory."""

    def __init__(self, module: str, kind: FailureKind, detail: str = "") -> None:
        self.module = module
        self.kind: FailureKind = kind
        self.detail = detail
        words = {
            "trap": "trapped",
            "timeout": "ran past its time limit",
            "memory": "ran out of memory",
        }
        tail = f": {detail}" if detail else ""
        super().__init__(f"wasm module {module!r} {words[kind]}{tail}")
