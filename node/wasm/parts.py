"""The node's WASM parts, built only with --enable-wasm (so wasmtime loads only then)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mesh.state import ControlState
from node.blobs.fetch import BlobFetcher
from node.blobs.store import BlobStore
from node.config.model import Config
from node.wasm.artifacts import ArtifactCache
from node.wasm.registry import BreakerSettings, WasmRegistry


def wasm_registry(
    config: Config, store: BlobStore, fetcher: BlobFetcher, state: Callable[[], ControlState]
) -> WasmRegistry:
    return WasmRegistry(
        lambda: state().wasm_modules,
        lambda: state().digests_in_use(),
        store,
        fetcher,
        ArtifactCache(artifacts_dir(config.data_path)),
        BreakerSettings(config.wasm_breaker_failures, config.wasm_breaker_cooldown_secs),
    )


def artifacts_dir(data_path: Path) -> Path:
    return data_path / "wasm-artifacts"
