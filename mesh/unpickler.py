"""The only way meshgate unpickles Raft data: an unpickler that builds plain data and nothing else.

pysyncobj's wire format, its journal, the journal's meta file and its
snapshots are all pickles, and `pickle.loads` calls whatever callable a
pickle names: one frame sent to an open Raft port ran a shell command
(issue 7). What pysyncobj and meshgate really store and send is plain data
plus a few known classes, so `find_class` allows exactly those names and
refuses every other global with `UnpicklingError`. A refusal is never retried
with another unpickler (pysyncobj's own `loads` falls back to the
pure-Python one on any error).

What the pickles carry (read from pysyncobj 0.3.17, checked against real
messages, entries, journal meta and snapshots in tests/unit/test_raft_unpickler.py):

- messages, log entries and the journal meta: dicts, lists, tuples, str, int,
  float, bool, None and bytes. pysyncobj pickles with protocol 2, which writes
  bytes as `_codecs.encode(text, "latin1")`, and empty bytes as `bytes()`;
- membership entries and the snapshot's member set: `pysyncobj.node.TCPNode`
  (a plain object: its attributes are restored, none of its code runs) in a
  `set`;
- the snapshot of our state: `mesh.state.ControlState`, plain data too.

The callables a pickle may reach are wrapped so that their arguments cannot
be abused either: `bytes(n)` would allocate n bytes, and `_codecs.encode`
knows codecs other than latin-1.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import IO, Any

_PY2_MODULES = {"__builtin__": "builtins"}  # protocol 2 writes Python 2 module names


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """`_codecs.encode` as protocol 2 uses it for bytes, and for nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed for latin-1 bytes only")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """`bytes()` as protocol 2 writes b"": never `bytes(n)`, which would allocate n bytes."""
    if args:
        raise pickle.UnpicklingError("bytes() is allowed without arguments only")
    return b""


# (module, name) -> what the pickle gets instead of importing it.
_CALLABLES: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _latin1,
    ("builtins", "bytes"): _empty_bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}
# Classes rebuilt from their attributes (protocol 2: `cls.__new__(cls)`, then the
# instance dict is filled in); imported by name, so this module imports neither.
_CLASSES = frozenset(
    {
        ("pysyncobj.node", "TCPNode"),
        ("pysyncobj.node", "Node"),
        ("mesh.state", "ControlState"),
    }
)


def allowed_names() -> frozenset[tuple[str, str]]:
    """Every global a pickle may name (for tests and docs)."""
    return frozenset(_CALLABLES) | _CLASSES


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` allows only the names listed above."""

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        allowed = _CALLABLES.get((module, name))
        if allowed is not None:
            return allowed
        if (module, name) in _CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to unpickle global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Unpickle `data` with the restricted unpickler (str is UTF-8, as pysyncobj accepts)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load(file: IO[bytes]) -> Any:
    """Unpickle one object from a binary file with the restricted unpickler."""
    return RestrictedUnpickler(file).load()
