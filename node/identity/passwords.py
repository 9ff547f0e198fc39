"""The admin password, stored only as a salted scrypt hash.

Why scrypt from `hashlib`: it is memory-hard (so a leaked config does not give
the password away cheaply), it needs no new dependency, and the encoding
`scrypt$n$r$p$salt_b64$hash_b64` carries its own parameters so they can be
raised later without breaking existing credentials. Parameters read from an
encoded hash are bounded, so a hostile or mistyped config cannot make a login
attempt allocate gigabytes. A plain-text password in the config is refused at
startup, with a pointer to `meshgate hash-password`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_MEMORY_BYTES = 128 * 1024 * 1024
_INT = re.compile(r"[0-9]{1,9}")
_HINT = "run `meshgate hash-password` and put its output after 'username:'"


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt_b64$hash_b64` for `password`, with a fresh random salt."""
    if not isinstance(password, str) or not password:
        raise ValueError("the password must be a non-empty string")
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P, HASH_BYTES)
    return "$".join((SCHEME, str(N), str(R), str(P), _b64(salt), _b64(digest)))


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded`; False (never an exception) on malformed input."""
    try:
        parsed = _parse(encoded)
        if parsed is None or not isinstance(password, str):
            return False
        n, r, p, salt, expected = parsed
        actual = _scrypt(password, salt, n, r, p, len(expected))
        return hmac.compare_digest(actual, expected)
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False


def parse_admin_credential(spec: str) -> tuple[str, str]:
    """Split a config value `username:scrypt$...` into (username, encoded hash)."""
    username, sep, encoded = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    username = username.strip()
    if not sep or not username:
        raise ValueError(f"the admin credential must look like 'username:scrypt$...'; {_HINT}")
    if _parse(encoded.strip()) is None:
        raise ValueError(
            f"the admin credential for {username!r} is not a valid scrypt hash "
            f"(plain-text passwords are refused); {_HINT}"
        )
    return username, encoded.strip()


def _parse(encoded: object) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, hash) of a well-formed, sanely bounded encoding, else None."""
    if not isinstance(encoded, str):
        return None
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    if not all(_INT.fullmatch(part) for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return None
    if _memory(n, r, p) > MAX_MEMORY_BYTES:
        return None
    try:
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest


def _memory(n: int, r: int, p: int) -> int:
    return 128 * r * (n + 2) + 128 * r * p


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = _memory(n, r, p) + 1024 * 1024
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--username",
        help="print a complete admin credential 'USERNAME:scrypt$...' instead of the hash alone",
    )


def run(
    args: argparse.Namespace,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Read a password (no echo on a terminal) and print its encoded hash."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            print("meshgate hash-password: the passwords differ", file=stderr)
            return 1
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        print("meshgate hash-password: empty password", file=stderr)
        return 1
    encoded = hash_password(password)
    username = getattr(args, "username", None)
    print(f"{username}:{encoded}" if username else encoded, file=stdout)
    return 0


def hash_password_cli(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`meshgate hash-password [--username NAME]`; argv excludes the command words."""
    parser = argparse.ArgumentParser(
        prog="meshgate hash-password",
        description="Hash an admin password for the meshgate config (read from stdin).",
    )
    add_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run(args, stdin=stdin, stdout=stdout, stderr=stderr)
