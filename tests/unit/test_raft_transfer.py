"""A stopping leader hands leadership over only while a follower is connected: when the
whole mesh stops at once there is nobody to take over, and waiting out the 2 s of tries
would only delay the stop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from mesh.events import AppliedStream
from mesh.raft import MeshRaft, PeerStatus, RaftSettings
from tests.support import strong

ME, PEER = "127.0.0.1:4001", "127.0.0.1:4002"


def test_a_leader_with_no_connected_follower_stops_handing_over_at_once(tmp_path: Path) -> None:
    raft = MeshRaft(RaftSettings(tmp_path, ME, password=strong("transfer")), AppliedStream())
    raft._sync = cast(Any, SimpleNamespace(otherNodes=[SimpleNamespace(id=PEER)]))
    gone = PeerStatus(PEER, connected=False, match_index=None, next_index=None)
    raft._status = replace(raft._status, role="leader", leader=ME, peers=(gone,))
    started = time.monotonic()
    moved = asyncio.run(raft.transfer_leadership(within=30.0))
    assert moved is False
    assert time.monotonic() - started < 5.0  # not the 30 s of tries
