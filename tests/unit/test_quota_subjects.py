"""The quota subjects of a caller (`node/pipeline/limits.py`), made once per version of
their records: a record the state replaces (a new Raft index as its version) gets its new
limits at once; the same version, the very same subject."""

from __future__ import annotations

from typing import Any

from mesh.state import ControlState
from node.auth import Principal
from node.limits.quotas import Limits
from node.pipeline.limits import caller_subjects


def key(version: int, limits: dict[str, int], parent: str | None = None) -> dict[str, Any]:
    return {
        "id": f"k{version}",
        "tenant": "t",
        "limits": limits,
        "parent": parent,
        "version": version,
    }


def test_a_new_version_of_a_key_or_tenant_brings_its_limits_at_once() -> None:
    state = ControlState()
    parent = key(3, {"requestsPerMinute": 50})
    child = key(4, {"requestsPerMinute": 5}, parent="k3")
    state.api_keys = {"k3": parent, "k4": child}
    state.tenants = {"t": {"name": "t", "limits": {"tokensPerHour": 900}, "version": 2}}
    caller = Principal("k4", "k", "user", "managed_key", "t", child)
    first = caller_subjects(state, caller)
    assert [(s.kind, s.id, s.limits) for s in first] == [
        ("key", "k4", Limits(requests_per_minute=5)),
        ("key", "k3", Limits(requests_per_minute=50)),  # its parent's hold too
        ("tenant", "t", Limits(tokens_per_hour=900)),
    ]
    assert all(a is b for a, b in zip(caller_subjects(state, caller), first, strict=True))
    # The tenant deleted and made again (a new version) with other limits; the parent's
    # record replaced at a later index.
    state.tenants = {"t": {"name": "t", "limits": {"tokensPerHour": 10}, "version": 8}}
    state.api_keys = {
        "k3": {**parent, "limits": {"requestsPerMinute": 1}, "version": 9},
        "k4": child,
    }
    assert [s.limits for s in caller_subjects(state, caller)] == [
        Limits(requests_per_minute=5),
        Limits(requests_per_minute=1),
        Limits(tokens_per_hour=10),
    ]
