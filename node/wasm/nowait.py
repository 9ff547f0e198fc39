"""WASI p2 without its waits: the host calls that sleep are replaced by ones that trap.

An epoch deadline is only checked in wasm code, so a module sleeping in a host call
(`monotonic-clock#subscribe-duration` then `pollable.block`, or `poll`) would hold its
thread, its instance and a node's shutdown for as long as it asks. Middleware has nothing
to wait for (it is given no files, sockets or stdin), so these calls trap at once and the
call fails as a timeout: the module asked for time the gateway does not give."""

from __future__ import annotations

from typing import NoReturn

import wasmtime
from wasmtime.component import Linker

# The WASI p2 version wasmtime's `add_wasip2` defines (guests' 0.2.x imports resolve to
# it): a replacement must use the same name to land in the same instance.
WASI_P2_VERSION = "0.2.12"
# The words a trap carries: the runtime tells a forbidden wait by them.
WAIT_REFUSED = "middleware may not wait in a WASI host call"
# interface -> the functions in it that wait
_WAITING = {
    "wasi:io/poll": ("poll", "[method]pollable.block"),
    "wasi:clocks/monotonic-clock": ("subscribe-duration", "subscribe-instant"),
}


def _refuse(name: str):  # type: ignore[no-untyped-def]
    def refuse(_store: object, *_args: object) -> NoReturn:
        raise wasmtime.WasmtimeError(f"{WAIT_REFUSED} ({name})")

    return refuse


def _define(linker: Linker) -> None:
    with linker.root() as root:
        for iface, funcs in _WAITING.items():
            with root.add_instance(f"{iface}@{WASI_P2_VERSION}") as instance:
                for func in funcs:
                    instance.add_func(func, _refuse(f"{iface}#{func}"))


def add_wasip2_without_waits(engine: wasmtime.Engine) -> Linker:
    """A linker with WASI p2 whose waiting calls trap. It checks first that wasmtime's WASI
    defines each of them under the expected version (a definition is refused as defined
    twice), so a wasmtime that moved on fails here, not by letting modules sleep."""
    probe = Linker(engine)
    probe.add_wasip2()
    for iface, funcs in _WAITING.items():
        for func in funcs:
            try:
                with probe.root() as root, root.add_instance(f"{iface}@{WASI_P2_VERSION}") as i:
                    i.add_func(func, _refuse(func))
            except wasmtime.WasmtimeError as exc:
                if "defined twice" in str(exc):
                    continue
                raise
            raise RuntimeError(
                f"wasmtime's WASI p2 has no {iface}@{WASI_P2_VERSION} {func}: "
                "update node/wasm/nowait.py WASI_P2_VERSION"
            )
    linker = Linker(engine)
    linker.add_wasip2()
    linker.allow_shadowing = True
    _define(linker)
    linker.allow_shadowing = False
    return linker
