"""The mesh secrets a node holds while the secret is rotated, and how it tells of them.

A node sends with one secret (`--mesh-secret`: Raft frames, the token it
presents to its peers, credentials it seals) and accepts that one or
`--mesh-secret-previous`. An operator rotates the secret with three rolling
restarts (docs/raft-transport.md, "Rotating the mesh secret") and must know
when a phase has reached every node, without any secret being shown: so
`/ha/local` reports each secret as a fingerprint: a short prefix of a slow
hash of the secret (scrypt), so that whoever reads `/ha/status` (admins,
monitoring, CI logs) cannot use it to test guesses of a weak secret quickly.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from node.ha.peers import PeerView, mesh_token

FINGERPRINT_CHARS = 12  # 48 bits: tells secrets apart at a glance, reveals nothing


# scrypt at n=2**14, r=8: about 16 MiB and tens of milliseconds per guess, computed once
# per secret (cached) by a node.
_SCRYPT: Final = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 2**20}


@functools.cache
def fingerprint(secret: str) -> str:
    """A short name for a secret that may be shown and compared."""
    digest = hashlib.scrypt(
        secret.encode(), salt=b"meshgate/mesh-secret/fingerprint", dklen=16, **_SCRYPT
    )
    return digest.hex()[:FINGERPRINT_CHARS]


@dataclass(frozen=True)
class MeshKeys:
    """The secret this node sends with, and the previous one it accepts as well."""

    secret: str = field(repr=False)  # never in a log line or a traceback
    previous: str | None = field(default=None, repr=False)
    _hashed: Future[None] = field(default_factory=Future, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The slow hashes now, at start, not in a request; on a thread of their own (scrypt
        # lets go of the GIL), so the node starts meanwhile instead of waiting ~70 ms.
        threading.Thread(target=self._hash, name="mesh-fingerprints", daemon=True).start()

    def _hash(self) -> None:
        with contextlib.suppress(Exception):  # it fails again where a fingerprint is read
            for secret in self.accepted:
                fingerprint(secret)
        self._hashed.set_result(None)

    def _fingerprint(self, secret: str) -> str:
        """The fingerprint of an accepted secret, once the start's hashing is done."""
        self._hashed.result()
        return fingerprint(secret)

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.secret, self.previous) if self.previous else (self.secret,)

    @property
    def sends(self) -> str:
        """The fingerprint of the secret this node sends with."""
        return self._fingerprint(self.secret)

    @property
    def token(self) -> str:
        """The mesh token this node presents to its peers."""
        return mesh_token(self.secret)

    def accepts_token(self, token: str) -> bool:
        """Is `token` the mesh token of a secret we accept? Every one is compared, in
        constant time, so the answer's timing says nothing about which."""
        # aiohttp decodes header bytes that are not UTF-8 as surrogates: they match nothing
        given = token.encode("utf-8", "surrogateescape")
        matches = [hmac.compare_digest(given, mesh_token(s).encode()) for s in self.accepted]
        return any(matches)

    def report(self) -> dict[str, Any]:
        return {"sends": self.sends, "accepts": [self._fingerprint(s) for s in self.accepted]}


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
