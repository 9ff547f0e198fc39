"""node.event_loop: uvloop when importable, asyncio's otherwise, and no global policy change."""

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


def test_asyncio_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    names: list[str] = []
    loop_type = event_loop.run(_loop_type(), names.append)
    assert names == ["asyncio"]
    assert not issubclass(loop_type, uvloop.Loop)
