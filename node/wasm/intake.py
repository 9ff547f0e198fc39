"""Taking a component in on the node that receives `POST /wasm`: read its bytes (a
`file_path` on this node, or base64 in the body), check them, and keep them in the blob
store, so that nothing reaches the log for bytes a node could not run.

Every refusal says what to fix and never shows the file's content (an admin could
otherwise read any file the node can through an error message).
"""

from __future__ import annotations

import binascii
import hashlib
import os
import stat
from base64 import b64decode
from dataclasses import dataclass

from node.wasm import runtime
from node.wasm.instance import Instance


class IntakeError(ValueError):
    """A component refused; `param` names the field at fault."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Checked:
    data: bytes
    digest: str
    compiled: runtime.CompiledComponent


def read_file(file_path: str, limit: int) -> bytes:
    """The bytes of a regular file on this node, at most `limit` (blocking).

    The file is opened once and every check is made on that descriptor, so a file swapped
    between a check and the read is never read unchecked; O_NONBLOCK keeps a FIFO or a
    device from blocking the open, and O_NOCTTY a terminal from becoming ours."""
    if not os.path.isabs(file_path):
        raise IntakeError(
            f"file_path must be an absolute path on the node, not {file_path!r}", "file_path"
        )
    try:
        fd = os.open(file_path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise IntakeError(
            f"file_path {file_path!r}: no such file on this node", "file_path"
        ) from None
    except OSError as exc:
        raise _unreadable(file_path, exc) from None
    try:
        return _read_regular(fd, file_path, limit)
    except OSError as exc:
        raise _unreadable(file_path, exc) from None
    finally:
        os.close(fd)


def _read_regular(fd: int, file_path: str, limit: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise IntakeError(f"file_path {file_path!r} is not a regular file", "file_path")
    if info.st_size > limit:
        raise IntakeError(
            f"file_path {file_path!r} is {info.st_size} bytes, over the limit of {limit} "
            "(--wasm-max-module-bytes)",
            "file_path",
        )
    chunks, size = [], 0
    while size <= limit:  # a file that grows while read stops one byte past the limit
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise IntakeError(
            f"file_path {file_path!r} is over the limit of {limit} bytes", "file_path"
        )
    return b"".join(chunks)


def _unreadable(file_path: str, exc: OSError) -> IntakeError:
    return IntakeError(f"file_path {file_path!r} cannot be read: {exc.strerror}", "file_path")


def decode_upload(text: str, limit: int) -> bytes:
    try:
        data = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IntakeError("wasm_base64 is not valid base64", "wasm_base64") from None
    if len(data) > limit:
        raise IntakeError(
            f"the component is {len(data)} bytes, over the limit of {limit} "
            "(--wasm-max-module-bytes)",
            "wasm_base64",
        )
    return data


def check(
    data: bytes,
    expected: str | None,
    attach_points: list[str],
    field: str,
    limits: dict[str, int],
) -> Checked:
    """Compile and check the bytes, and make one instance under `limits` (a record's; blocking:
    CPU-bound). IntakeError says what is wrong."""
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise IntakeError(f"sha256 mismatch: the bytes hash to {digest}, not {expected}", "sha256")
    try:
        compiled = runtime.compile_component(data)
    except runtime.WasmInvalid as exc:
        raise IntakeError(f"{field}: {exc}", field) from None
    missing = [p for p in attach_points if p not in compiled.exports]
    if missing:
        raise IntakeError(
            f"the component does not export {', '.join(missing)} (it exports "
            f"{', '.join(sorted(compiled.exports))}): attach it where it can run",
            "attach_points",
        )
    try:  # a module that cannot start under its limits would fail on every node
        Instance(compiled, "new module", runtime.Limits(**limits))
    except (runtime.WasmInvalid, runtime.WasmFailed) as exc:
        raise IntakeError(f"{field}: the component cannot start: {exc}", "limits") from None
    return Checked(data, digest, compiled)
