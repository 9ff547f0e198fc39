"""The mesh secret: given, or generated once for a node that stands alone.

pysyncobj's wire format is pickle, so a Raft port without authentication lets
anyone who can connect (another local user, a sidecar, a local SSRF) run code
on the node. So no member ever runs without a secret: a mesh is given one
(`--mesh-secret`, required as soon as there are peers), and a single node
without one generates a random secret on its first start and keeps it in
`<data-dir>/mesh.secret` (mode 0600). To grow that node into a mesh later,
give the other nodes the same value.

The secret also keys what nodes derive from it: the token they use to poll
each other's `/ha/local`, and the key that encrypts worker credentials in the
replicated state. While it is rotated, `--mesh-secret-previous` is accepted for
all three as well (node/ha/rotation.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from node.identity.strength import generate, weakness

SECRET_FILE = "mesh.secret"


class MeshSecretError(RuntimeError):
    """The stored secret cannot be read or is unusable; the message says what to do."""


def mesh_secret(configured: str | None, data_dir: Path) -> str:
    """The secret this node's Raft member uses: the configured one, else the stored one."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    if path.exists():
        return _read(path)
    return _create(path)


def _read(path: Path) -> str:
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise MeshSecretError(f"cannot read the mesh secret {path}: {exc.strerror}") from None
    problem = weakness(secret)
    if problem:
        raise MeshSecretError(f"the mesh secret in {path} {problem}; delete it to generate anew")
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # it may have been copied in with a loose mode
    return secret


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = generate()
    # O_EXCL: two processes on one data dir must not both write a secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret
