"""Rotating the mesh secret: two secrets accepted, one sent with, a third refused.

The keyring of the Raft port (mesh/keyring.py), worker credentials
(node/workers/credentials.py), peer tokens and fingerprints
(node/ha/rotation.py), the setting, and the leader's duty to re-seal
credentials once every node sends with its secret (node/control_loop.py).
The setting is in tests/unit/test_config.py; the rotation itself, on a real
mesh under write load, in tests/cluster/test_secret_rotation.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh import wire
from mesh.events import AppliedStream
from mesh.keyring import keyring, raft_key
from mesh.raft import MeshRaft, RaftSettings
from node.ha.peers import PeerView, mesh_token
from node.ha.rotation import MeshKeys, everyone_sends_with, fingerprint
from node.localmesh.process import free_port
from node.workers.credentials import CredentialBox, CredentialError
from tests.support import strong
from tests.unit.test_control_loop import Harness

OLD, NEW, OTHER = strong("rotation-old"), strong("rotation-new"), strong("rotation-other")
MESSAGE = {"type": "append_entries", "term": 3, "entries": [(b"\x00abc", 5, 3)]}


def _opens(frame: bytes, encryptor: wire.Fernet) -> Any:
    return wire.open_frame(frame[wire.LENGTH.size :], encryptor, wire.MESSAGE_LIMIT)[1]


# -- the Raft port -------------------------------------------------------------------------


def test_the_raft_keyring_seals_with_the_primary_and_opens_either() -> None:
    old, new = raft_key(OLD), raft_key(NEW)
    rotating = keyring(new, old)  # phase 2: primary new, previous old
    sealed = wire.seal(MESSAGE, rotating, 42)
    assert _opens(sealed, new) == MESSAGE  # sent with the primary...
    with pytest.raises(wire.FrameError):
        _opens(sealed, old)  # ...never with the previous one
    assert _opens(wire.seal(MESSAGE, old, 1), rotating) == MESSAGE  # a node not rotated yet
    assert _opens(wire.seal(MESSAGE, keyring(old, new), 1), rotating) == MESSAGE  # phase 1
    assert keyring(new, None) is new  # no previous: exactly pysyncobj's key


def test_a_frame_under_a_third_secret_is_refused_by_every_phase() -> None:
    old, new, other = raft_key(OLD), raft_key(NEW), raft_key(OTHER)
    attacker = wire.seal(MESSAGE, other, 1)
    for holder in (old, keyring(old, new), keyring(new, old), new):
        with pytest.raises(wire.FrameError, match="not encrypted with the mesh secret"):
            _opens(attacker, holder)
    # A node that kept only the old secret after phase 3 is refused by the rotated mesh.
    with pytest.raises(wire.FrameError):
        _opens(wire.seal(MESSAGE, old, 1), new)


def test_a_raft_member_seals_with_its_secret_and_accepts_the_previous(tmp_path: Path) -> None:
    settings = RaftSettings(
        data_dir=tmp_path,
        self_address=f"127.0.0.1:{free_port()}",
        password=NEW,
        previous_password=OLD,
    )
    raft = MeshRaft(settings, AppliedStream())
    raft.start()
    try:
        encryptor = raft._sync.encryptor  # what every connection of the transport uses
        assert _opens(wire.seal(MESSAGE, encryptor, 1), raft_key(NEW)) == MESSAGE
        assert _opens(wire.seal(MESSAGE, raft_key(OLD), 1), encryptor) == MESSAGE
        with pytest.raises(wire.FrameError):
            _opens(wire.seal(MESSAGE, raft_key(OTHER), 1), encryptor)
    finally:
        raft.stop()


# -- worker credentials --------------------------------------------------------------------


def test_credentials_are_sealed_with_the_primary_and_opened_under_either() -> None:
    rotating = CredentialBox(NEW, OLD)
    sealed = rotating.seal("Bearer k")
    assert CredentialBox(NEW).open(sealed) == "Bearer k"
    with pytest.raises(CredentialError):
        CredentialBox(OLD).open(sealed)
    from_old = CredentialBox(OLD).seal("Bearer old")
    assert rotating.open(from_old) == "Bearer old"
    with pytest.raises(CredentialError):
        rotating.open(CredentialBox(OTHER).seal("Bearer x"))  # a third secret


def test_resealing_moves_a_credential_from_the_previous_secret_to_the_primary() -> None:
    rotating = CredentialBox(NEW, OLD)
    from_old = CredentialBox(OLD).seal("Basic dTpw")
    assert rotating.under_previous(from_old)
    resealed = rotating.reseal(from_old)
    assert not rotating.under_previous(resealed)
    assert CredentialBox(NEW).open(resealed) == "Basic dTpw"  # the previous may now go
    assert not rotating.under_previous(rotating.seal("Bearer k"))
    assert not rotating.under_previous("sk-plain") and not rotating.under_previous(None)
    assert CredentialBox(NEW).open(rotating.reseal("sk-plain")) == "Bearer sk-plain"
    unknown = CredentialBox(OTHER).seal("Bearer x")
    assert not rotating.under_previous(unknown)  # no key opens it: resealing cannot help
    with pytest.raises(CredentialError):
        rotating.reseal(unknown)


# -- peer tokens and what a node reports ---------------------------------------------------


def test_peer_tokens_under_either_secret_are_accepted_and_a_third_is_not() -> None:
    keys = MeshKeys(NEW, OLD)
    assert keys.token == mesh_token(NEW)  # sent with the primary only
    assert keys.accepts_token(mesh_token(NEW)) and keys.accepts_token(mesh_token(OLD))
    assert not keys.accepts_token(mesh_token(OTHER))
    assert not MeshKeys(NEW).accepts_token(mesh_token(OLD))
    assert not keys.accepts_token("")


def test_fingerprints_tell_secrets_apart_without_showing_them() -> None:
    report = MeshKeys(NEW, OLD).report()
    assert report == {"sends": fingerprint(NEW), "accepts": [fingerprint(NEW), fingerprint(OLD)]}
    assert fingerprint(NEW) != fingerprint(OLD) and len(fingerprint(NEW)) == 12
    shown = repr(report) + repr(MeshKeys(NEW, OLD))
    shown += repr(RaftSettings(Path("d"), None, password=NEW, previous_password=OLD))
    for secret in (NEW, OLD):
        assert secret not in shown and mesh_token(secret)[:12] not in shown


def _view(name: str, sends: str | None, reachable: bool = True) -> PeerView:
    report = {"mesh_secret": {"sends": sends}} if sends else {}
    return PeerView(name, f"http://{name}", reachable=reachable, report=report)


def test_every_other_member_must_say_it_sends_with_the_secret() -> None:
    members = {"n1": {}, "n2": {}, "n3": {}}
    mine, old = fingerprint(NEW), fingerprint(OLD)
    views = {"n2": _view("n2", mine), "n3": _view("n3", mine)}
    assert everyone_sends_with(mine, members, "n1", views)
    assert not everyone_sends_with(mine, members, "n1", {**views, "n3": _view("n3", old)})
    assert not everyone_sends_with(mine, members, "n1", {"n2": views["n2"]})  # n3 not polled
    unreachable = {**views, "n3": _view("n3", mine, reachable=False)}
    assert not everyone_sends_with(mine, members, "n1", unreachable)
    assert not everyone_sends_with(mine, members, "n1", {**views, "n3": _view("n3", None)})


# -- the leader's duty ---------------------------------------------------------------------


def test_the_leader_reseals_only_once_every_node_sends_with_its_secret() -> None:
    workers = {
        "w": {"status": "ready", "api_key": CredentialBox(OLD).seal("Bearer k"), "version": 4}
    }
    h = Harness(workers)
    h.loop.credentials = CredentialBox(NEW, OLD)
    h.loop.announced, h.loop.worker_urls = True, []
    h.raft.state.auth_required = True
    h.raft.role = "leader"
    everyone = [False]
    h.loop.everyone_sends_mine = lambda: everyone[0]
    assert h.cycles(1)[0][0].startswith("steady")  # a node may not hold the new secret yet
    assert h.commits == []
    everyone[0] = True
    assert h.cycles(1)[0][0] == "sealed the api_key of worker w"
    op, args = h.commits[-1]
    assert op == "worker.update" and args["expected_version"] == 4
    assert CredentialBox(NEW).open(args["changes"]["api_key"]) == "Bearer k"
    h.raft.role = "follower"  # only the leader does it
    assert h.loop.view().to_seal == ()
