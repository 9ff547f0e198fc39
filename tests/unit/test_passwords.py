"""Unit tests of admin credential hashing (`node/identity/passwords.py`)."""

from __future__ import annotations

import argparse
import io

import pytest

from node.identity.passwords import (
    hash_password,
    hash_password_cli,
    parse_admin_credential,
    run,
    verify_password,
)


@pytest.fixture(scope="module")
def encoded() -> str:
    return hash_password("correct horse battery staple")


def test_round_trip(encoded: str) -> None:
    scheme, n, r, p, _salt, _digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert verify_password("correct horse battery staple", encoded)
    assert hash_password("correct horse battery staple") != encoded  # fresh salt


def test_wrong_password_is_false(encoded: str) -> None:
    assert not verify_password("correct horse battery stapler", encoded)
    assert not verify_password("", encoded)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plaintext-password",
        "scrypt$",
        "scrypt$16384$8$1$c2FsdA==",
        "bcrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaA==",
        "scrypt$16383$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # n not a power of two
        "scrypt$1048576$64$16$c2FsdHNhbHRzYWx0$" + "A" * 44,  # too much memory
        "scrypt$16384$8$1$not*base64$" + "A" * 44,
        "scrypt$16384$8$1$c2FsdHNhbHRzYWx0$short",
        "scrypt$+16384$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,
        "scrypt$16384$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44 + "$extra",
    ],
)
def test_malformed_encodings_are_false(bad: str) -> None:
    assert verify_password("anything", bad) is False


def test_non_strings_are_false(encoded: str) -> None:
    assert verify_password(None, encoded) is False  # type: ignore[arg-type]
    assert verify_password("x", None) is False  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        hash_password("")


def test_parse_admin_credential(encoded: str) -> None:
    assert parse_admin_credential(f"admin:{encoded}") == ("admin", encoded)


@pytest.mark.parametrize("spec", ["admin:hunter2", "admin:", "admin", ":scrypt$1", "hunter2"])
def test_parse_admin_credential_refuses_plain_text(spec: str) -> None:
    with pytest.raises(ValueError, match="meshgate hash-password") as info:
        parse_admin_credential(spec)
    assert "hunter2" not in str(info.value)


def test_cli_reads_stdin_and_prints_hash() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert hash_password_cli([], stdin=io.StringIO("s3cret pass\n"), stdout=out, stderr=err) == 0
    printed = out.getvalue().strip()
    assert verify_password("s3cret pass", printed)
    out = io.StringIO()
    args = argparse.Namespace(username="root")
    assert run(args, stdin=io.StringIO("pw\n"), stdout=out) == 0
    user, encoded = parse_admin_credential(out.getvalue().strip())
    assert user == "root" and verify_password("pw", encoded)
    assert hash_password_cli([], stdin=io.StringIO("\n"), stdout=out, stderr=err) == 1
