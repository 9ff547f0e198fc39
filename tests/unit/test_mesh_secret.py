"""A lone node's generated mesh secret (`node/ha/secret.py`)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from node.ha.secret import SECRET_FILE, MeshSecretError, mesh_secret
from node.identity.strength import weakness


def test_a_configured_secret_wins(tmp_path: Path) -> None:
    assert mesh_secret("given-" + "x1y2z3" * 8, tmp_path) == "given-" + "x1y2z3" * 8
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_lone_node_generates_one_secret_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = mesh_secret(None, data)
    assert weakness(first) is None
    path = data / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert mesh_secret(None, data) == first  # a restart reads the same secret


def test_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    first = mesh_secret(None, tmp_path)
    (tmp_path / SECRET_FILE).chmod(0o644)
    assert mesh_secret(None, tmp_path) == first
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


def test_a_weak_stored_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("changeme\n")
    with pytest.raises(MeshSecretError, match="delete it"):
        mesh_secret(None, tmp_path)


def test_a_generated_secret_never_looks_like_a_command_line_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from node.identity import strength

    fine = "Qm9vZ3xK7pLw2RtY9vNcB4dF6hJ8kM1nP3qS5uW7yZ0aC2eG4iK6mO8rT1vX3zB"
    drawn = iter(["-" + fine[1:], "abcdefgh" + fine[8:], fine])  # a dash; a typed run
    monkeypatch.setattr(strength.secrets, "token_urlsafe", lambda n: next(drawn))
    assert strength.generate() == fine
