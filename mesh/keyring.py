"""The Raft port's keys while the mesh secret is rotated: seal with one, open with two.

A rotation is done with rolling restarts (docs/raft-transport.md, "Rotating the
mesh secret"), so for a while the nodes hold different primary secrets. Every
node seals each frame with its primary key (pysyncobj's Fernet, derived from
`--mesh-secret`) and opens a frame sealed with its primary key or with the key
of the previous secret (`MultiFernet`). A frame sealed under any other secret
is refused, as before.
"""

from __future__ import annotations

from typing import cast

from cryptography.fernet import Fernet, MultiFernet
from pysyncobj.encryptor import getEncryptor


def raft_key(secret: str) -> Fernet:
    """The key pysyncobj derives from a secret (PBKDF2-SHA256 with its fixed salt)."""
    return cast(Fernet, getEncryptor(secret))


def keyring(primary: Fernet, previous: Fernet | None) -> Fernet | MultiFernet:
    """Encrypts with `primary`; decrypts what either key encrypted."""
    if previous is None:
        return primary
    return MultiFernet([primary, previous])
