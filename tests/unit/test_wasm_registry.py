"""The WASM registry on one node: a change of a module's record made while the module is
still being prepared (fetched from a peer, or its runner built) is the one it runs with;
removing unused components keeps those a registration is taking in; a module whose
runner could not be built under its limits is built again when they change."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from node.blobs.store import BlobStore
from node.record_work import Backoff
from node.wasm import runtime
from node.wasm.artifacts import ArtifactCache
from node.wasm.convert import lowered_request
from node.wasm.registry import Record, WasmRegistry
from tests.wasm_components import module_bytes

COMPONENT = module_bytes("empty")
DIGEST = hashlib.sha256(COMPONENT).hexdigest()


class SlowPeer:
    """A peer fetch that waits until the test lets it deliver the component."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.asked = asyncio.Event()
        self.go = asyncio.Event()

    async def fetch(self, digest: str, size: int | None = None) -> None:
        self.asked.set()
        await self.go.wait()
        self.store.put_bytes(COMPONENT)


def record(**changes: Any) -> Record:
    base = {
        "id": "m1",
        "name": "empty",
        "sha256": DIGEST,
        "size": len(COMPONENT),
        "attach_points": ["OnRequest"],
        "order": 0,
        "enabled": True,
        "on_error": "fail",
        "limits": {"timeout_ms": 50, "memory_bytes": 1 << 20},
        "created_at": 0.0,
    }
    return {**base, **changes}


def registry(tmp_path: Path, records: dict[str, Record]) -> tuple[WasmRegistry, SlowPeer]:
    store = BlobStore(tmp_path, 1 << 20)
    peer = SlowPeer(store)
    made = WasmRegistry(
        lambda: records,
        lambda: {r["sha256"] for r in records.values()},
        store,
        peer,  # type: ignore[arg-type]
        ArtifactCache(tmp_path / "artifacts"),
        backoff=Backoff(0.01, 0.01),
    )
    return made, peer


async def ready(reg: WasmRegistry, module_id: str = "m1", state: str = "ready") -> None:
    """Poll until the module is in `state` here (its preparation runs on this loop)."""
    for _ in range(1000):
        if reg.status(module_id)["state"] == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{module_id} not {state}: {reg.status(module_id)}")


def limits_in_effect(reg: WasmRegistry) -> runtime.Limits:
    (loaded,) = reg.chain("OnRequest")
    return loaded.runner.limits


def test_a_change_made_while_the_component_is_fetched_is_the_one_in_effect(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        records = {"m1": record()}
        reg, peer = registry(tmp_path, records)
        reg.start()
        await asyncio.wait_for(peer.asked.wait(), 10)
        assert reg.status("m1")["state"] == "pending"
        limits = {"timeout_ms": 120, "memory_bytes": 2 << 20}
        records["m1"] = record(limits=limits, on_error="continue", order=5)  # a PATCH
        reg.sync()
        peer.go.set()
        await ready(reg)
        assert limits_in_effect(reg) == runtime.Limits(**limits)
        (loaded,) = reg.chain("OnRequest")
        assert loaded.record["on_error"] == "continue" and loaded.record["order"] == 5
        await reg.stop()

    asyncio.run(scenario())


def test_a_change_made_while_the_runner_is_built_builds_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    building, release = threading.Event(), threading.Event()
    real = WasmRegistry._runner

    def slow_runner(
        self: WasmRegistry, compiled: runtime.CompiledComponent, rec: Record
    ) -> runtime.ModuleRunner:
        building.set()
        release.wait(10)
        return real(self, compiled, rec)

    monkeypatch.setattr(WasmRegistry, "_runner", slow_runner)

    async def scenario() -> None:
        records = {"m1": record()}
        reg, peer = registry(tmp_path, records)
        peer.store.put_bytes(COMPONENT)  # here already: no fetch
        reg.start()
        await asyncio.to_thread(building.wait, 10)
        records["m1"] = record(limits={"timeout_ms": 7, "memory_bytes": 1 << 20})
        reg.sync()
        release.set()
        await ready(reg)
        assert limits_in_effect(reg).timeout_ms == 7
        await reg.stop()

    asyncio.run(scenario())


def test_removing_unused_components_keeps_those_a_registration_takes_in(
    tmp_path: Path,
) -> None:
    reg, peer = registry(tmp_path, {})
    peer.store.put_bytes(COMPONENT)
    with reg.holds.taking_in() as taking:
        taking(DIGEST)
        reg.drop_unused([DIGEST])  # another request's cleanup
        assert peer.store.has(DIGEST)
        assert taking.release() == [DIGEST]
    reg.drop_unused([DIGEST])
    assert not peer.store.has(DIGEST)


def test_a_module_failed_under_too_tight_limits_recovers_when_they_are_put_back(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        records = {"m1": record()}
        reg, peer = registry(tmp_path, records)
        peer.go.set()
        reg.start()
        await ready(reg)
        records["m1"] = record(limits={"timeout_ms": 50, "memory_bytes": 1024})  # < 1 page
        reg.sync()
        await ready(reg, state="failed")
        assert reg.chain("OnRequest") == [] and reg.not_ready("OnRequest") == ["empty"]
        records["m1"] = record()  # the PATCH back
        reg.sync()
        await ready(reg)
        (loaded,) = reg.chain("OnRequest")
        request = runtime.WasmRequest("POST", "/v1/chat/completions")
        assert loaded.runner.call("OnRequest", lowered_request(request)) == runtime.Continue()
        await reg.stop()

    asyncio.run(scenario())
