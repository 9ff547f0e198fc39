"""Public keys of an external identity provider, loaded from a JWKS file or URL.

Why a module of its own: token verification must be pure CPU work (it runs on
every request), so the keys are fetched here, by `JwksCache.refresh()`, which
the node calls at start and then periodically. A failed refresh keeps the last
good key set, so a flaky IdP endpoint does not log everybody out; the failure
is kept in `last_error` for health reporting.

Only RSA and EC public keys meant for signatures are kept. Symmetric (`oct`)
keys are dropped on purpose: a JWKS must never become a source of HMAC secrets
(the key-confusion attack), and private members, if an operator pasted a
private JWK by mistake, are ignored. RSA keys shorter than 2048 bits are
dropped too; the reasons for every dropped key are kept in `skipped`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from node.identity.claims import ASYMMETRIC_ALGORITHMS

MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1 << 20
FETCH_TIMEOUT_SECS = 5.0
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JwksError(Exception):
    """A JWKS could not be read or holds no usable key (message has no key material)."""


@dataclass(frozen=True, slots=True)
class JwksKey:
    kid: str | None
    kty: str  # "RSA" | "EC"
    crv: str | None  # EC curve
    alg: str | None  # the JWK's own "alg", when it names one
    key: Any  # a cryptography RSAPublicKey / EllipticCurvePublicKey

    def accepts(self, alg: str) -> bool:
        """Whether a token signed with `alg` may be verified with this key."""
        wanted = ASYMMETRIC_ALGORITHMS.get(alg)
        if wanted is None:
            return False
        kty, crv = wanted
        if self.kty != kty or (crv is not None and self.crv != crv):
            return False
        return self.alg is None or self.alg == alg


def parse_jwks(
    data: str | bytes | Mapping[str, Any], skipped: list[str] | None = None
) -> tuple[JwksKey, ...]:
    """Usable signing keys of a JWKS document; reasons for dropped keys go to `skipped`."""
    obj: Any = data
    if isinstance(data, str | bytes):
        try:
            obj = json.loads(data)
        except ValueError:
            raise JwksError("JWKS is not valid JSON") from None
    if not isinstance(obj, Mapping) or not isinstance(obj.get("keys"), list):
        raise JwksError("JWKS has no 'keys' list")
    notes = skipped if skipped is not None else []
    keys = []
    for index, entry in enumerate(obj["keys"]):
        key = _parse_key(entry, index, notes)
        if key is not None:
            keys.append(key)
    if not keys:
        raise JwksError("JWKS has no usable RSA or EC signing key")
    return tuple(keys)


def _parse_key(entry: Any, index: int, notes: list[str]) -> JwksKey | None:
    if not isinstance(entry, Mapping):
        notes.append(f"key #{index}: not an object")
        return None
    kid = entry.get("kid")
    label = f"key #{index} (kid {kid!r})" if isinstance(kid, str) else f"key #{index}"
    kty, alg, use = entry.get("kty"), entry.get("alg"), entry.get("use", "sig")
    reason = None
    if kid is not None and not isinstance(kid, str):
        reason = "kid is not a string"
    elif kty not in ("RSA", "EC"):
        reason = f"key type {kty!r} is not RSA or EC"
    elif use != "sig":
        reason = f"use {use!r} is not 'sig'"
    elif alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        reason = f"algorithm {alg!r} is not an RSA/EC signature algorithm"
    if reason is not None:
        notes.append(f"{label}: {reason}")
        return None
    public = {name: value for name, value in entry.items() if name not in _PRIVATE_MEMBERS}
    try:
        key = jwt.PyJWK(public).key
    except (jwt.PyJWTError, ValueError, TypeError):
        notes.append(f"{label}: not a valid {kty} public key")
        return None
    if kty == "RSA" and not isinstance(key, rsa.RSAPublicKey):
        key = None
    if kty == "EC" and not isinstance(key, ec.EllipticCurvePublicKey):
        key = None
    if key is None:
        notes.append(f"{label}: not a {kty} public key")
        return None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        notes.append(f"{label}: RSA key shorter than {MIN_RSA_BITS} bits")
        return None
    crv = entry.get("crv") if kty == "EC" else None
    return JwksKey(kid=kid, kty=kty, crv=crv, alg=alg, key=key)


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            body = fh.read(MAX_JWKS_BYTES + 1)
    except OSError as exc:
        raise JwksError(f"cannot read JWKS file {path}: {exc.strerror or exc}") from None
    if len(body) > MAX_JWKS_BYTES:
        raise JwksError("JWKS file is too large")
    return body


async def fetch_jwks(url: str, timeout_secs: float = FETCH_TIMEOUT_SECS) -> bytes:
    """The body of a JWKS URL (HTTP 200 only, at most 1 MiB)."""
    timeout = aiohttp.ClientTimeout(total=timeout_secs)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            # Never followed: the key set comes from the URL the operator named, nowhere else.
            session.get(url, headers={"Accept": "application/json"}, allow_redirects=False) as resp,
        ):
            if resp.status != 200:
                raise JwksError(f"JWKS URL answered HTTP {resp.status}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("JWKS document is too large")
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JwksError(f"cannot fetch JWKS: {type(exc).__name__}") from None


class JwksCache:
    """The last good key set of one JWKS source, replaced only by a successful refresh."""

    def __init__(
        self,
        file: str | None = None,
        url: str | None = None,
        timeout_secs: float = FETCH_TIMEOUT_SECS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bool(file) == bool(url):
            raise ValueError("give exactly one of a JWKS file or a JWKS URL")
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the JWKS URL must be http:// or https://")
        self.file = file or None
        self.url = url or None
        self.timeout_secs = timeout_secs
        self._clock = clock
        self.keys: tuple[JwksKey, ...] = ()
        self.skipped: tuple[str, ...] = ()
        self.loaded_at: float | None = None
        self.last_error: str | None = None
        self.last_attempt_at: float | None = None

    def find(self, kid: str) -> list[JwksKey]:
        return [key for key in self.keys if key.kid == kid]

    async def refresh(self) -> bool:
        """(Re)load the keys; on failure keep the old ones and record `last_error`."""
        self.last_attempt_at = self._clock()
        skipped: list[str] = []
        try:
            if self.url:
                raw = await fetch_jwks(self.url, self.timeout_secs)
            else:
                assert self.file is not None
                raw = await asyncio.to_thread(_read_file, self.file)
            keys = parse_jwks(raw, skipped)
        except JwksError as exc:
            self.last_error = str(exc)
            return False
        self.keys = keys
        self.skipped = tuple(skipped)
        self.loaded_at = self._clock()
        self.last_error = None
        return True
