"""Compiled components cached under the data dir, so a restart does not recompile.

A cache file is named by `artifact_key(digest)` (the component's digest and the wasmtime
version), so another wasmtime never loads it. It is written by this node only (never
fetched from a peer: wasmtime maps it as machine code), atomically, private to the node's
user. A cache file that does not load is compiled again and rewritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from node.wasm import runtime

log = logging.getLogger(__name__)


class ArtifactCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self, digest: str, component: Path) -> runtime.CompiledComponent:
        """The compiled component of the blob at `component` (blocking: run it in a thread).
        Raises WasmInvalid when the bytes are not a component meshgate can run."""
        cached = self.folder / runtime.artifact_key(digest)
        if cached.is_file():
            try:
                return runtime.deserialize(cached.read_bytes())
            except runtime.WasmInvalid as exc:
                log.warning("wasm artifact %s does not load (%s): compiling again", cached, exc)
        compiled = runtime.compile_component(component.read_bytes())
        self._write(cached, runtime.serialize(compiled))
        return compiled

    def keep(self, digest: str, compiled: runtime.CompiledComponent) -> None:
        """Cache what the node that took the registration compiled already (blocking)."""
        self._write(self.folder / runtime.artifact_key(digest), runtime.serialize(compiled))

    def forget(self, digest: str) -> None:
        (self.folder / runtime.artifact_key(digest)).unlink(missing_ok=True)

    def _write(self, target: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=self.folder, prefix="part-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
