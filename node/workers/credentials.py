"""Worker credentials: taken out of URLs, sealed at rest, opened only to call the worker.

A worker may need a credential: an `api_key` (sent as `Authorization:
Bearer`) or a user and password written into its URL
(`http://user:pass@host:port`, sent as HTTP Basic). Left as they come, both
would sit in the clear in the replicated state — in every node's journal and
snapshots, and in any backup of them — and the URL form would also appear
wherever a worker's URL is shown: metric labels, `/workers`, error messages,
logs.

So at registration the proposer splits the userinfo out of the URL (the
record keeps `http://host:port`) and seals the credential as the
`Authorization` header value it becomes, with Fernet under a key derived from
the mesh secret by HKDF-SHA256 with a label of its own (so the key that seals
credentials is not the one that authenticates Raft or peers). The sealed text
goes in the record's `api_key` field, which the state machine keeps as an
opaque string. A node opens it only to build the headers it sends the worker.

Records written before this keep working: a plaintext `api_key` is still
sent as a bearer key (and the leader re-seals it, see `needs_sealing`), and a
URL that still holds userinfo is called without it, with HTTP Basic, and
shown without it everywhere.

While the mesh secret is rotated, a box also holds the previous secret's key
(`MultiFernet`): it seals with the current one and opens what either sealed,
and the leader re-seals what only the previous key opens (`reseal`) once every
node sends with the current secret, so the previous one can then be dropped.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "sealed:v1:"
PURPOSE = b"meshgate/worker-credentials/v1"


class CredentialError(ValueError):
    """A sealed credential cannot be opened (sealed under another mesh secret, or damaged)."""


@dataclass(frozen=True)
class Target:
    """How this node calls one worker: its URL without userinfo, and the headers to send."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why the credential could not be used, if it could not


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://u:p@h:1/x` -> (`http://h:1/x`, ("u", "p")); URLs without userinfo unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment)
    return bare.geturl(), (unquote(user), unquote(password))


def safe_url(url: str) -> str:
    """The URL as it may be shown and logged: never with userinfo."""
    return split_userinfo(url)[0]


def basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def bearer(api_key: str) -> str:
    return f"Bearer {api_key}"


def is_sealed(stored: str | None) -> bool:
    return isinstance(stored, str) and stored.startswith(SEALED_PREFIX)


def _key(mesh_secret: str) -> Fernet:
    if not mesh_secret:
        raise ValueError("worker credentials are sealed with the mesh secret; it is empty")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(
        mesh_secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


class CredentialBox:
    """Seals worker credentials with a key derived from the mesh secret; opens them with it
    or with the key of `previous`, the secret being rotated out (or in)."""

    def __init__(self, mesh_secret: str, previous: str | None = None) -> None:
        self._primary = _key(mesh_secret)
        self._keys = MultiFernet([self._primary, *([_key(previous)] if previous else [])])

    def seal(self, authorization: str) -> str:
        """The stored form of an `Authorization` header value."""
        return SEALED_PREFIX + self._primary.encrypt(authorization.encode()).decode()

    def reseal(self, stored: str) -> str:
        """The stored form of the same credential under the current key: plaintext sealed,
        a credential sealed under the previous key sealed again (`MultiFernet.rotate`)."""
        if not is_sealed(stored):
            return self.seal(bearer(stored))
        try:
            token = self._keys.rotate(stored[len(SEALED_PREFIX) :].encode())
        except InvalidToken:
            raise CredentialError("the worker's credential opens under no known key") from None
        return SEALED_PREFIX + token.decode()

    def under_previous(self, stored: object) -> bool:
        """Sealed under the previous key only: lost if the previous secret were dropped now."""
        if not isinstance(stored, str) or not is_sealed(stored):
            return False
        token = stored[len(SEALED_PREFIX) :].encode()
        return not _opens(self._primary, token) and _opens(self._keys, token)

    def open(self, stored: str) -> str:
        """The `Authorization` header value a stored credential stands for."""
        if not is_sealed(stored):
            return bearer(stored)  # written before credentials were sealed
        try:
            return self._keys.decrypt(stored[len(SEALED_PREFIX) :].encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise CredentialError(
                "the worker's credential was sealed with another mesh secret; set its "
                "api_key again (PATCH /workers/{id})"
            ) from None

    def target(self, record: dict[str, object]) -> Target:
        """Where and how to call the worker a replicated record describes."""
        url, userinfo = split_userinfo(str(record["url"]))
        url = url.rstrip("/")
        stored = record.get("api_key")
        if isinstance(stored, str) and stored:
            try:
                return Target(url, {"Authorization": self.open(stored)})
            except CredentialError as exc:
                return Target(url, {}, str(exc))
        if userinfo is not None:  # a URL registered with userinfo before it was split out
            return Target(url, {"Authorization": basic(*userinfo)})
        return Target(url)


def _opens(key: Fernet | MultiFernet, token: bytes) -> bool:
    try:
        key.decrypt(token)
    except InvalidToken:
        return False
    return True


def needs_sealing(record: dict[str, object]) -> bool:
    """A record that still holds a plaintext api_key (written before keys were sealed)."""
    stored = record.get("api_key")
    return isinstance(stored, str) and bool(stored) and not is_sealed(stored)
