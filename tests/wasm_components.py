"""Real middleware components for the tests, written in the component text format and
compiled by wasmtime (`wasmtime.wat2wasm` reads components).

Each one is a full component of the `smg:gateway` world: the WIT types, a core module,
and per exported interface a small shim component that names the types, as
wit-component lays them out. componentize-py builds the same world from Python (see
docs/wasm.md), but one of its components takes ~25 s to build and ~35 s for wasmtime
to compile on this machine; these take milliseconds, so every test can use real ones.

Core ABI the guest functions implement (canonical ABI, flattened):
- on-request(method, path, query, headers, body, request-id: ptr+len each; now: i64)
- on-response(status; headers, body: ptr+len each)
both return a pointer to an `action` in memory: case byte at +0 (0 continue,
1 reject, 2 modify); reject's u16 at +4; modify-action at +4: status option
(+4 flag, +6 u16), headers-set (+8 ptr, +12 len), headers-add (+16, +20),
headers-remove (+24, +28), body-replace option (+32 flag, +36 ptr, +40 len).
A header in memory is name ptr/len then value ptr/len (16 bytes)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import wasmtime

from node.wasm import WIT_DIR

_HEADER = '(record (field "name" string) (field "value" string))'


# The WIT types in component text, with the header (or modify-action) type to use as {0}.
_REQUEST = (
    '(record (field "method" string) (field "path" string) (field "query" string) '
    '(field "headers" (list {0})) (field "body" (list u8)) '
    '(field "request-id" string) (field "now-epoch-ms" u64))'
)
_RESPONSE = '(record (field "status" u16) (field "headers" (list {0})) (field "body" (list u8)))'
_MODIFY = (
    '(record (field "status" (option u16)) (field "headers-set" (list {0})) '
    '(field "headers-add" (list {0})) (field "headers-remove" (list string)) '
    '(field "body-replace" (option (list u8))))'
)
_ACTION = '(variant (case "continue") (case "reject" u16) (case "modify" {0}))'


def _request(h: str) -> str:
    return _REQUEST.format(h)


def _response(h: str) -> str:
    return _RESPONSE.format(h)


def _modify(h: str) -> str:
    return _MODIFY.format(h)


def _action(m: str) -> str:
    return _ACTION.format(m)


_IFACES = {
    "on-request": ("smg:gateway/middleware-on-request", "req", "request", _request),
    "on-response": ("smg:gateway/middleware-on-response", "resp", "response", _response),
}


def _shim(func: str) -> str:
    """A component that re-exports `func` under named types, as the WIT interface has them."""
    _, param, record, shape = _IFACES[func]
    return f'''
  (component $shim-{func}
    (type $h0' {_HEADER})
    (import "import-header" (type $h0 (eq $h0')))
    (type $r0' {shape("$h0")})
    (import "import-{record}" (type $r0 (eq $r0')))
    (type $m0' {_modify("$h0")})
    (import "import-modify-action" (type $m0 (eq $m0')))
    (type $a0' {_action("$m0")})
    (import "import-action" (type $a0 (eq $a0')))
    (import "import-{func}" (func $f (param "{param}" $r0) (result $a0)))
    (export $h "header" (type $h0))
    (type $r1 {shape("$h")})
    (export $r "{record}" (type $r0) (type (eq $r1)))
    (type $m1 {_modify("$h")})
    (export $m "modify-action" (type $m0) (type (eq $m1)))
    (type $a1 {_action("$m")})
    (export $a "action" (type $a0) (type (eq $a1)))
    (export "{func}" (func $f) (func (param "{param}" $r) (result $a)))
  )
  (func $lift-{func} (param "{param}" ${_IFACES[func][2]}) (result $action)
    (canon lift (core func $core "{func}") (memory (core memory $core "memory"))
      (realloc (core func $core "cabi_realloc")) (post-return (core func $core "reset"))))
  (instance $inst-{func} (instantiate $shim-{func}
    (with "import-header" (type $header)) (with "import-{record}" (type ${record}))
    (with "import-modify-action" (type $modify)) (with "import-action" (type $action))
    (with "import-{func}" (func $lift-{func}))))
  (export "{_IFACES[func][0]}" (instance $inst-{func}))'''


# The core module's fixed part: one memory, a bump allocator the host lowers arguments
# with, reset after each call (post-return), and the action written at address 16.
_CORE_BASE = """
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 4096))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
          (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))))))
      (global.set $bump (local.get $end))
      (local.get $p))
    (func (export "reset") (param i32) (global.set $bump (i32.const 4096)))
    (func $continue (result i32) (i32.store8 (i32.const 16) (i32.const 0)) (i32.const 16))
    (func $reject (param $status i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 1))
      (i32.store16 (i32.const 20) (local.get $status)) (i32.const 16))
    ;; a modify-action with every field empty, for a guest to fill in
    (func $modify (result i32)
      (memory.fill (i32.const 16) (i32.const 0) (i32.const 44))
      (i32.store8 (i32.const 16) (i32.const 2)) (i32.const 16))
    ;; memcmp: 1 when the len bytes at a and b are equal
    (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
      (local $i i32)
      (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (i32.const 1))"""

REQUEST_PARAMS = (
    "(param $method i32) (param $method_len i32) (param $path i32) (param $path_len i32) "
    "(param $query i32) (param $query_len i32) (param $headers i32) (param $headers_len i32) "
    "(param $body i32) (param $body_len i32) (param $rid i32) (param $rid_len i32) "
    "(param $now i64)"
)
RESPONSE_PARAMS = (
    "(param $status i32) (param $headers i32) (param $headers_len i32) "
    "(param $body i32) (param $body_len i32)"
)


# The world's types, named in a component as its shims expect them.
_TYPES = (
    f"  (type $header {_HEADER})\n  (type $request {_request('$header')})\n"
    f"  (type $response {_response('$header')})\n  (type $modify {_modify('$header')})\n"
    f"  (type $action {_action('$modify')})"
)


def component_wat(core: str, exports: tuple[str, ...] = ("on-request", "on-response")) -> str:
    """A component exporting `exports`, whose core module adds `core` (it defines the
    exported core functions "on-request"/"on-response" with the params above)."""
    shims = "".join(_shim(f) for f in exports)
    return (
        f"(component\n{_TYPES}\n  (core module $m{_CORE_BASE}\n{core}\n  )\n"
        f"  (core instance $core (instantiate $m)){shims}\n)"
    )


def build(core: str, exports: tuple[str, ...] = ("on-request", "on-response")) -> bytes:
    return bytes(wasmtime.wat2wasm(component_wat(core, exports)))


CONTINUE_ON_REQUEST = f'(func (export "on-request") {REQUEST_PARAMS} (result i32) (call $continue))'
CONTINUE_ON_RESPONSE = (
    f'(func (export "on-response") {RESPONSE_PARAMS} (result i32) (call $continue))'
)

# Reject with 401 unless a header `x-api-key: let-me-in` is present.
API_KEY = "let-me-in"
AUTH = (
    CONTINUE_ON_RESPONSE
    + f'''
    (data (i32.const 64) "x-api-key")
    (data (i32.const 80) "{API_KEY}")
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (local $h i32) (local $end i32)
      (local.set $h (local.get $headers))
      (local.set $end (i32.add (local.get $headers)
                               (i32.mul (local.get $headers_len) (i32.const 16))))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $h) (local.get $end)))
        (if (i32.and
              (call $eq (i32.load (local.get $h)) (i32.load offset=4 (local.get $h))
                        (i32.const 64) (i32.const 9))
              (call $eq (i32.load offset=8 (local.get $h)) (i32.load offset=12 (local.get $h))
                        (i32.const 80) (i32.const {len(API_KEY)})))
          (then (return (call $continue))))
        (local.set $h (i32.add (local.get $h) (i32.const 16)))
        (br $next)))
      (call $reject (i32.const 401)))'''
)

# Modify: set `x-injected: yes`, add `x-added: 1`, remove `x-drop`, and echo the request
# path back as the body (so a test sees the request's fields arrive).
INJECT = (
    CONTINUE_ON_RESPONSE
    + f"""
    (data (i32.const 64) "x-injected")
    (data (i32.const 80) "yes")
    (data (i32.const 96) "x-added")
    (data (i32.const 112) "1")
    (data (i32.const 128) "x-drop")
    ;; header records at 256 (set), 272 (add); the remove list (one string) at 288
    (data (i32.const 256) "\\40\\00\\00\\00\\0a\\00\\00\\00\\50\\00\\00\\00\\03\\00\\00\\00")
    (data (i32.const 272) "\\60\\00\\00\\00\\07\\00\\00\\00\\70\\00\\00\\00\\01\\00\\00\\00")
    (data (i32.const 288) "\\80\\00\\00\\00\\06\\00\\00\\00")
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (drop (call $modify))
      (i32.store (i32.const 24) (i32.const 256)) (i32.store (i32.const 28) (i32.const 1))
      (i32.store (i32.const 32) (i32.const 272)) (i32.store (i32.const 36) (i32.const 1))
      (i32.store (i32.const 40) (i32.const 288)) (i32.store (i32.const 44) (i32.const 1))
      (i32.store8 (i32.const 48) (i32.const 1))
      (i32.store (i32.const 52) (local.get $path)) (i32.store (i32.const 56) (local.get $path_len))
      (i32.const 16))"""
)

# OnResponse only: a 500 becomes a 503; anything else passes.
STATUS_MAP = f"""
    (func (export "on-response") {RESPONSE_PARAMS} (result i32)
      (if (i32.ne (local.get $status) (i32.const 500)) (then (return (call $continue))))
      (drop (call $modify))
      (i32.store8 (i32.const 20) (i32.const 1)) (i32.store16 (i32.const 22) (i32.const 503))
      (i32.const 16))"""

LOOP = (
    CONTINUE_ON_RESPONSE
    + f"""
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (loop $forever (br $forever)) (unreachable))"""
)

# Grows memory until the cap refuses, then aborts as an allocator does (its name is in
# the trap's backtrace, as Rust's handle_alloc_error is).
ALLOCATE = (
    CONTINUE_ON_RESPONSE
    + f"""
    (func $handle_alloc_error (unreachable))
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      (call $handle_alloc_error) (unreachable))"""
)

TRAP = (
    CONTINUE_ON_RESPONSE
    + f"""
    (func (export "on-request") {REQUEST_PARAMS} (result i32) (unreachable))"""
)

# Traps on the way out only: what reaches it is the response's status and headers.
TRAP_ON_RESPONSE = (
    CONTINUE_ON_REQUEST
    + f"""
    (func (export "on-response") {RESPONSE_PARAMS} (result i32) (unreachable))"""
)

EMPTY = CONTINUE_ON_REQUEST

# Sets 10,000 headers (each `x: x`, all naming the same two bytes): more than a node takes.
HEADER_FLOOD = f"""
    (data (i32.const 64) "x")
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (local $i i32) (local $at i32)
      (local.set $at (i32.mul (memory.grow (i32.const 3)) (i32.const 65536)))
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
        (i32.store (local.get $at) (i32.const 64))
        (i32.store offset=4 (local.get $at) (i32.const 1))
        (i32.store offset=8 (local.get $at) (i32.const 64))
        (i32.store offset=12 (local.get $at) (i32.const 1))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (drop (call $modify))
      (i32.store (i32.const 24) (i32.sub (local.get $at) (i32.const 160000)))
      (i32.store (i32.const 28) (i32.const 10000))
      (i32.const 16))"""

# Replaces the body with `now-epoch-ms` bytes of "b" (the test picks the size there), for
# which it grows its memory; it aborts as an allocator does when the memory cap says no.
BODY_FLOOD = f"""
    (func $handle_alloc_error (unreachable))
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (local $size i32) (local $page i32)
      (local.set $size (i32.wrap_i64 (local.get $now)))
      (local.set $page (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16))
                                             (i32.const 1))))
      (if (i32.eq (local.get $page) (i32.const -1)) (then (call $handle_alloc_error)))
      (memory.fill (i32.mul (local.get $page) (i32.const 65536)) (i32.const 98) (local.get $size))
      (drop (call $modify))
      (i32.store8 (i32.const 48) (i32.const 1))
      (i32.store (i32.const 52) (i32.mul (local.get $page) (i32.const 65536)))
      (i32.store (i32.const 56) (local.get $size))
      (i32.const 16))"""

# Grows a table 1,000 elements at a time until the store says no; rejects with the number
# of times it grew (so a test reads how far the cap let it go).
TABLE_GROW = f"""
    (table $t 0 funcref)
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (local $grown i32)
      (block $full (loop $more
        (br_if $full (i32.eq (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1)))
        (local.set $grown (i32.add (local.get $grown) (i32.const 1)))
        (br $more)))
      (call $reject (local.get $grown)))"""

SEEN_HEADER = "x-wasm-seen"


def _mark(spins: int) -> str:
    """OnResponse: spin `spins` rounds of a loop, then set `x-wasm-seen: yes` on the answer
    (any answer: the worker's or the node's own error). OnRequest: continue."""
    return (
        CONTINUE_ON_REQUEST
        + f"""
    (data (i32.const 64) "{SEEN_HEADER}")
    (data (i32.const 80) "yes")
    (data (i32.const 256) "\\40\\00\\00\\00\\0b\\00\\00\\00\\50\\00\\00\\00\\03\\00\\00\\00")
    (func (export "on-response") {RESPONSE_PARAMS} (result i32)
      (local $i i32)
      (block $done (loop $spin
        (br_if $done (i32.ge_u (local.get $i) (i32.const {spins})))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $spin)))
      (drop (call $modify))
      (i32.store (i32.const 24) (i32.const 256)) (i32.store (i32.const 28) (i32.const 1))
      (i32.const 16))"""
    )


# Rounds of spinning that take about 0.4 s on the development host.
SLOW_MARK_SPINS = 160_000_000

# What the tests register: name -> (core, exported interfaces)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "auth": (AUTH, ("on-request", "on-response")),
    "inject": (INJECT, ("on-request", "on-response")),
    "status_map": (STATUS_MAP, ("on-response",)),
    "loop": (LOOP, ("on-request", "on-response")),
    "allocate": (ALLOCATE, ("on-request", "on-response")),
    "trap": (TRAP, ("on-request", "on-response")),
    "trap_on_response": (TRAP_ON_RESPONSE, ("on-request", "on-response")),
    "empty": (EMPTY, ("on-request",)),
    "header_flood": (HEADER_FLOOD, ("on-request",)),
    "body_flood": (BODY_FLOOD, ("on-request",)),
    "table_grow": (TABLE_GROW, ("on-request",)),
    "mark": (_mark(0), ("on-request", "on-response")),
    "slow_mark": (_mark(SLOW_MARK_SPINS), ("on-request", "on-response")),
}


def module_bytes(name: str) -> bytes:
    core, exports = MODULES[name]
    return build(core, exports)


# A valid component that exports neither middleware interface.
NO_EXPORTS = bytes(wasmtime.wat2wasm("(component)"))


# An SMG-style guest in Python, for componentize-py: continue on both attach points.
PYTHON_EMPTY_GUEST = """\
from wit_world import exports
from wit_world.imports import middleware_types as t


class MiddlewareOnRequest(exports.MiddlewareOnRequest):
    def on_request(self, req: t.Request) -> t.Action:
        return t.Action_Continue()


class MiddlewareOnResponse(exports.MiddlewareOnResponse):
    def on_response(self, resp: t.Response) -> t.Action:
        return t.Action_Continue()
"""


def build_python_guest(source: str, cache_dir: Path) -> bytes:
    """A component built by componentize-py from a Python guest of the `smg` world, cached
    in `cache_dir` by the guest source, the WIT and componentize-py's version (a build
    takes tens of seconds)."""
    wit = (WIT_DIR / "gateway.wit").read_bytes()
    key = hashlib.sha256(source.encode() + wit + version("componentize-py").encode()).hexdigest()
    cached = cache_dir / f"{key[:32]}.wasm"
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "guest.py").write_text(source)
            out = Path(tmp) / "guest.wasm"
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "componentize-py"),
                    "-d",
                    str(WIT_DIR),
                    "-w",
                    "smg",
                    "componentize",
                    "-p",
                    tmp,
                    "guest",
                    "-o",
                    str(out),
                ],
                check=True,
                capture_output=True,
                timeout=600,
            )
            partial = cached.with_suffix(f".{os.getpid()}.part")  # a reader never sees half
            partial.write_bytes(out.read_bytes())
            os.replace(partial, cached)
    return cached.read_bytes()


def _wrong_world(func: str) -> bytes:
    """A component whose middleware-on-request exports `func` taking a string."""
    return bytes(
        wasmtime.wat2wasm(f'''(component
  (core module $m (memory (export "memory") 1)
    (func (export "f") (param i32 i32) (result i32) (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64)))
  (core instance $i (instantiate $m))
  (func $f (param "req" string) (result u16) (canon lift (core func $i "f")
    (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (instance $x (export "{func}" (func $f)))
  (export "smg:gateway/middleware-on-request" (instance $x)))''')
    )


WRONG_TYPES = _wrong_world("on-request")
MISSING_FUNC = _wrong_world("handle")


# A module that sleeps `ns` in WASI (monotonic-clock#subscribe-duration, then
# pollable.block) on every OnRequest call, or in its start function (review 15's attack:
# the epoch deadline is only checked in wasm code).
_SLEEP_IMPORTS = """
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (type $bp (borrow $p))
    (export "[method]pollable.block" (func (param "self" $bp)))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer 1 $pollable (type $p0))
    (export "pollable" (type $p (eq $p0)))
    (type $op (own $p))
    (export "subscribe-duration" (func (param "when" u64) (result $op)))))
  (alias export $clock "subscribe-duration" (func $sub))
  (alias export $poll "[method]pollable.block" (func $blk))
  (core func $csub (canon lower (func $sub)))
  (core func $cblk (canon lower (func $blk)))
  (core instance $host (export "subscribe" (func $csub)) (export "block" (func $cblk)))"""


def _with_host(imports: str, core: str) -> bytes:
    """A component of both attach points whose core module `core` imports the WASI functions
    `imports` lowers, as core instance "host"."""
    shims = _shim("on-request") + _shim("on-response")
    wat = (
        f"(component\n{imports}\n{_TYPES}\n  (core module $m{core}\n  )\n"
        f'  (core instance $core (instantiate $m (with "host" (instance $host)))){shims}\n)'
    )
    return bytes(wasmtime.wat2wasm(wat))


def sleeper(ns: int, in_start: bool = False) -> bytes:
    sleep = f"(call $block (call $subscribe (i64.const {ns})))"
    core = f"""
    (import "host" "subscribe" (func $subscribe (param i64) (result i32)))
    (import "host" "block" (func $block (param i32))){_CORE_BASE}
    {CONTINUE_ON_RESPONSE}
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      {"" if in_start else sleep} (call $continue))"""
    if in_start:
        core += f"\n    (func $start {sleep}) (start $start)"
    return _with_host(_SLEEP_IMPORTS, core)


def poller() -> bytes:
    """A module whose OnRequest calls wasi:io/poll#poll (on an empty list: the call is what
    is refused, whatever it would wait for)."""
    imports = """
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $p (sub resource)))
    (type $bp (borrow $p))
    (export "poll" (func (param "in" (list $bp)) (result (list u32))))))
  (alias export $poll "poll" (func $pl))
  (core module $libc (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $re))
  (core func $cpoll (canon lower (func $pl) (memory $mem) (realloc $re)))
  (core instance $host (export "poll" (func $cpoll)))"""
    core = f"""
    (import "host" "poll" (func $poll (param i32 i32 i32))){_CORE_BASE}
    {CONTINUE_ON_RESPONSE}
    (func (export "on-request") {REQUEST_PARAMS} (result i32)
      (call $poll (i32.const 0) (i32.const 0) (i32.const 16)) (call $continue))"""
    return _with_host(imports, core)
