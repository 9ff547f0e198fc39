"""Whether another live node holds this node's name (checked once, before announcing).

Two nodes under one name share one membership record, so draining or shutting
down that name reaches both. The record names the holder's Raft address and
boot id; the holder is live if its `/ha/local` still answers with that name and
a boot id that is not ours. A restart of the same node (same name, new boot
id) finds its old run gone, or finds itself, and takes the name over.
"""

from __future__ import annotations

from typing import Any


def record_to_check(
    members: dict[str, dict[str, Any]], name: str, boot_id: str, cleared: set[str]
) -> dict[str, Any] | None:
    """The membership record under our name left by another run, unless already cleared."""
    record = members.get(name)
    if record is None or record.get("boot_id") in (boot_id, *cleared):
        return None
    return record


def conflict(
    name: str,
    raft_address: str | None,
    boot_id: str,
    record: dict[str, Any],
    report: dict[str, Any] | None,
) -> str | None:
    """Why this node must not take `name` (None if it may): `report` is what the record's
    HTTP URL answered on `/ha/local`, None if nothing answered."""
    if report is None or report.get("name") != name or report.get("boot_id") in (None, boot_id):
        return None
    return (
        f"node name {name!r} is held by a live member (raft {record.get('raft_address')}, "
        f"boot id {report['boot_id']}, {record.get('http_url')}); this node (raft "
        f"{raft_address}, boot id {boot_id}) will not take it: give it its own --node-name"
    )
