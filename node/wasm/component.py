"""Checking, compiling and caching a component: what `POST /wasm` needs before a
module may enter the log, and what a restart needs to skip compiling again."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import wasmtime
from wasmtime.component import Component, Linker

from node.wasm.engine import shared_engine, wasmtime_version
from node.wasm.errors import WasmInvalid
from node.wasm.nowait import add_wasip2_without_waits
from node.wasm.signature import check_exports

# The attach points and the WIT interface each one calls.
INTERFACES = {
    "OnRequest": ("smg:gateway/middleware-on-request", "on-request"),
    "OnResponse": ("smg:gateway/middleware-on-response", "on-response"),
}
# Imports the host provides: WASI p2 (linked, with no files, sockets, env or args
# granted and no waits (nowait.py); guest toolchains import all of it) and the types-only interface.
_PROVIDED_IMPORTS = (
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "smg:gateway/middleware-types",
)
_CORE_MODULE_VERSION = b"\x01\x00\x00\x00"


@dataclass(frozen=True)
class CompiledComponent:
    """A component compiled for `engine`, and the attach points it can serve."""

    component: Component
    engine: wasmtime.Engine
    # attach point -> the name of the interface it exports for it
    interfaces: dict[str, str]

    @property
    def exports(self) -> frozenset[str]:
        """The attach points: a subset of {"OnRequest", "OnResponse"}."""
        return frozenset(self.interfaces)


def _interface(name: str) -> str:
    return name.split("@", 1)[0]  # a later SMG may version its package


def _check_header(data: bytes) -> None:
    if data[:4] != b"\0asm":
        raise WasmInvalid("not a WebAssembly binary (it does not start with \\0asm)")
    if data[4:8] == _CORE_MODULE_VERSION:
        raise WasmInvalid(
            "a core WebAssembly module, not a component: build for wasm32-wasip2 "
            "or wrap it with `wasm-tools component new`"
        )


def _attach_points(component: Component, engine: wasmtime.Engine) -> dict[str, str]:
    ty = component.type
    unknown = sorted(n for n in ty.imports(engine) if not n.startswith(_PROVIDED_IMPORTS))
    if unknown:
        raise WasmInvalid(
            f"the component imports {', '.join(unknown)}, which the gateway "
            "does not provide (only WASI p2 with nothing granted)"
        )
    exported = {_interface(name): name for name in ty.exports(engine)}
    points = {p: exported[iface] for p, (iface, _) in INTERFACES.items() if iface in exported}
    if not points:
        raise WasmInvalid(
            "the component exports neither smg:gateway/middleware-on-request "
            "nor smg:gateway/middleware-on-response (see docs/wasm.md)"
        )
    check_exports(component, engine, {INTERFACES[p][1]: name for p, name in points.items()})
    return points


def compile_component(data: bytes, engine: wasmtime.Engine | None = None) -> CompiledComponent:
    """Validate and compile `data`; WasmInvalid says what is wrong with it."""
    engine = engine or shared_engine()
    _check_header(data)
    try:
        component = Component(engine, bytes(data))
    except wasmtime.WasmtimeError as exc:
        raise WasmInvalid(f"not a valid component: {str(exc).splitlines()[0]}") from None
    return CompiledComponent(component, engine, _attach_points(component, engine))


def artifact_key(digest: str) -> str:
    """The file name of a compiled artifact: the same bytes on another wasmtime recompile."""
    return f"{digest}.wasmtime-{wasmtime_version()}.cwasm"


def serialize(compiled: CompiledComponent) -> bytes:
    return bytes(compiled.component.serialize())


def deserialize(data: bytes, engine: wasmtime.Engine | None = None) -> CompiledComponent:
    """Load an artifact that `serialize` wrote. Trusted input only: wasmtime maps it as
    machine code, so it must come from this node's own --data-dir, never from a peer."""
    engine = engine or shared_engine()
    try:
        component = Component.deserialize(engine, data)
    except wasmtime.WasmtimeError as exc:
        raise WasmInvalid(f"not a compiled artifact for this wasmtime: {exc}") from None
    return CompiledComponent(component, engine, _attach_points(component, engine))


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_linker_lock = threading.Lock()
_linkers: dict[wasmtime.Engine, Linker] = {}


def _linker(engine: wasmtime.Engine) -> Linker:
    """The engine's one linker (WASI p2 whose waits trap), made once: only making it
    takes the lock."""
    with _linker_lock:
        linker = _linkers.get(engine)
        if linker is None:
            linker = _linkers[engine] = add_wasip2_without_waits(engine)
        return linker


def instantiate(store: wasmtime.Store, compiled: CompiledComponent) -> wasmtime.component.Instance:
    """An instance of `compiled` in `store`, linked to WASI p2 only. Instantiating reads the
    linker only (wasmtime's `Linker::instantiate` takes it shared), so threads that each
    instantiate into their own store need no lock."""
    return _linker(compiled.engine).instantiate(store, compiled.component)
