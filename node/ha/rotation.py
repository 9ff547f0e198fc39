"""The mesh secrets a node holds while the secret is rotated, and how it tells of them.

A node sends with one secret (`--mesh-secret`: Raft frames, the token it
presents to its peers, credentials it seals) and accepts that one or
`--mesh-secret-previous`. An operator rotates the secret with three rolling
restarts (docs/raft-transport.md, "Rotating the mesh secret") and must know
when a phase has reached every node, without any secret being shown: so
`/ha/local` reports each secret as a fingerprint, a short prefix of an HMAC
keyed by the secret (the secret is high-entropy, so the prefix gives nothing
away, and a node that lacks the secret cannot compute it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.ha.peers import PeerView, mesh_token

FINGERPRINT_CHARS = 12  # 48 bits: tells secrets apart at a glance, reveals nothing


def fingerprint(secret: str) -> str:
    """A short name for a secret that may be shown and compared."""
    digest = hmac.new(secret.encode(), b"meshgate/mesh-secret/fingerprint", hashlib.sha256)
    return digest.hexdigest()[:FINGERPRINT_CHARS]


@dataclass(frozen=True)
class MeshKeys:
    """The secret this node sends with, and the previous one it accepts as well."""

    secret: str = field(repr=False)  # never in a log line or a traceback
    previous: str | None = field(default=None, repr=False)

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.secret, self.previous) if self.previous else (self.secret,)

    @property
    def sends(self) -> str:
        """The fingerprint of the secret this node sends with."""
        return fingerprint(self.secret)

    @property
    def token(self) -> str:
        """The mesh token this node presents to its peers."""
        return mesh_token(self.secret)

    def accepts_token(self, token: str) -> bool:
        """Is `token` the mesh token of a secret we accept? Every one is compared, in
        constant time, so the answer's timing says nothing about which."""
        given = token.encode()
        matches = [hmac.compare_digest(given, mesh_token(s).encode()) for s in self.accepted]
        return any(matches)

    def report(self) -> dict[str, Any]:
        return {"sends": self.sends, "accepts": [fingerprint(s) for s in self.accepted]}


def everyone_sends_with(
    sends: str, members: Mapping[str, Any], me: str, views: Mapping[str, PeerView]
) -> bool:
    """Does every other member's last `/ha/local` say it sends with the secret named `sends`?
    A member that does not answer, or does not say (an earlier version), is not counted as
    one that does."""
    for name in members:
        if name == me:
            continue
        view = views.get(name)
        said = view.report.get("mesh_secret") if view and view.reachable else None
        if not isinstance(said, dict) or said.get("sends") != sends:
            return False
    return True
