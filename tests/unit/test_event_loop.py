"""node.event_loop: uvloop when importable (or named), asyncio's otherwise, no global policy."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from node import event_loop


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_is_chosen_when_importable() -> None:
    policy = asyncio.get_event_loop_policy()
    names: list[str] = []
    loop_type = event_loop.run(_loop_type(), names.append)
    assert names == ["uvloop"]
    assert issubclass(loop_type, uvloop.Loop)
    assert asyncio.get_event_loop_policy() is policy  # nothing leaks into other code


def test_asyncio_when_named_or_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    assert not issubclass(event_loop.run(_loop_type(), names.append, "asyncio"), uvloop.Loop)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert not issubclass(event_loop.run(_loop_type(), names.append), uvloop.Loop)
    assert names == ["asyncio", "asyncio"]


def test_uvloop_named_but_missing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    names: list[str] = []
    with pytest.raises(event_loop.LoopUnavailable, match="uvloop is not installed"):
        event_loop.run(_loop_type(), names.append, "uvloop")
    assert names == []
