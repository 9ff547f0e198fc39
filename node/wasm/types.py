"""The Python side of the `smg:gateway` middleware types: what a host hands a module
and what a module answers. Plain values, so callers never see wasmtime objects."""

from __future__ import annotations

from dataclasses import dataclass, field

# One header as (name, value); a list keeps order and repeated names, as HTTP does.
Header = tuple[str, str]

MIB = 1024 * 1024


@dataclass(frozen=True)
class WasmRequest:
    """WIT `request`."""

    method: str
    path: str
    query: str = ""
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""
    request_id: str = ""
    now_epoch_ms: int = 0


@dataclass(frozen=True)
class WasmResponse:
    """WIT `response`."""

    status: int
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class Continue:
    """WIT `action::continue`: pass through unchanged."""


@dataclass(frozen=True)
class Reject:
    """WIT `action::reject(u16)`: stop the chain with this HTTP status."""

    status: int


@dataclass(frozen=True)
class Modify:
    """WIT `action::modify(modify-action)`."""

    status: int | None = None
    headers_set: list[Header] = field(default_factory=list)
    headers_add: list[Header] = field(default_factory=list)
    headers_remove: list[str] = field(default_factory=list)
    body_replace: bytes | None = None


Action = Continue | Reject | Modify


@dataclass(frozen=True)
class Limits:
    """Hard limits on every call of one module. The store's counts bound what a module can
    make besides its linear memory: table elements (per table), and how many tables,
    memories and core instances it may have (an empty componentize-py guest, CPython and
    the WASI adapter included, runs within 20 instances, 10 tables, 3 memories and 10,000
    table elements, each tried alone)."""

    timeout_ms: int = 50
    memory_bytes: int = 64 * MIB
    table_elements: int = 100_000
    tables: int = 100
    memories: int = 100
    instances: int = 100
