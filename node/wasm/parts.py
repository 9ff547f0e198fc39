"""The node's WASM parts, built only with --enable-wasm (so wasmtime loads only then)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mesh.state import ControlState
from node.blobs.fetch import BlobFetcher
from node.blobs.store import BlobStore
from node.config.model import Config
from node.http_limits import MAX_FIELD_SIZE
from node.wasm.artifacts import ArtifactCache
from node.wasm.registry import BreakerSettings, WasmRegistry
from node.wasm.runtime import AnswerBounds, RunnerSettings


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
        runner_settings(config),
    )


def runner_settings(config: Config) -> RunnerSettings:
    return RunnerSettings(
        instances=config.wasm_instances,
        busy_wait=config.wasm_busy_wait_ms / 1000,
        # An answer's header is bounded as a request's is; a replaced body as a module's input.
        bounds=AnswerBounds(header_bytes=MAX_FIELD_SIZE, body_bytes=config.wasm_max_body_bytes),
    )


def artifacts_dir(data_path: Path) -> Path:
    return data_path / "wasm-artifacts"
