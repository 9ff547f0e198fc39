"""JWT bearer tokens: the HS256 ones meshgate issues after admin login, and an IdP's.

Why the rules are as they are:
- The key is chosen by us, never by the token. The unverified `iss` only picks
  the kind of token: ours (HS256, our secret only) or the IdP's (RS*/ES*/PS*,
  JWKS keys only). The header's `alg` must be allowed for that kind, so
  `alg: none` and "HS256 with the RSA public key as the HMAC secret" (key
  confusion) are refused before any signature is checked. Header fields that
  point at keys (`jku`, `x5u`, `jwk`) are ignored.
- `verify()` is pure CPU work and never does network I/O; JWKS keys are loaded
  by `refresh()`, which the node calls at start and periodically.
- Time checks (exp, nbf, iat) use the injected clock, with leeway for exp/nbf,
  so every node and every test agrees on "now".
- Every `TokenError` message is a fixed phrase: no token, claim value or key.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import jwt

from node.identity.claims import Identity, IdpSettings, TokenError
from node.identity.jwks import JwksCache, JwksKey

OWN_ALGORITHM = "HS256"
OWN_LEEWAY_SECS = 30.0
MIN_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 16 * 1024
ROLES = ("admin", "minter", "user")
TENANT_ROLES = ("minter", "user")  # roles that act within one tenant
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_DECODE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidAlgorithmError, "token algorithm not allowed"),
    (jwt.InvalidSignatureError, "invalid token signature"),
    (jwt.InvalidAudienceError, "wrong token audience"),
    (jwt.InvalidIssuerError, "wrong token issuer"),
)


class TokenService:
    """Issues meshgate's HS256 tokens and verifies those and an IdP's."""

    def __init__(
        self,
        hs256_secret: str | None,
        issuer: str = "meshgate",
        audience: str = "meshgate",
        lifetime_secs: int = 3600,
        idp: IdpSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        secret = hs256_secret.encode() if hs256_secret else None  # "" means "not configured"
        if secret is not None and len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
        if not issuer or not audience:
            raise ValueError("issuer and audience must not be empty")
        if lifetime_secs <= 0:
            raise ValueError("lifetime_secs must be positive")
        if idp is not None and idp.issuer == issuer:
            raise ValueError("the IdP issuer must differ from meshgate's own issuer")
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.lifetime_secs = int(lifetime_secs)
        self.idp = idp
        self._clock = clock
        self.jwks = JwksCache(idp.jwks_file, idp.jwks_url, clock=clock) if idp else None
        # Set when a token names a kid we do not know (keys may have rotated):
        # a hint for the node to refresh sooner. Cleared by refresh().
        self.unknown_kid_seen = False

    def issue(
        self, subject: str, name: str, role: str, tenant: str | None, version: int = 0
    ) -> tuple[str, Identity]:
        if self._secret is None:
            raise RuntimeError("no HS256 secret is configured; meshgate cannot issue tokens")
        if not subject or role not in ROLES:
            raise ValueError(f"a token needs a subject and a role, one of {', '.join(ROLES)}")
        if role in TENANT_ROLES and not tenant:
            raise ValueError("a user or minter token needs a tenant")
        now = int(self._clock())
        exp = now + self.lifetime_secs
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "name": name or subject,
            "role": role,
            "iat": now,
            "exp": exp,
            "jti": secrets.token_urlsafe(16),
            "ver": version,
        }
        if tenant is not None:
            claims["tenant"] = tenant
        token = jwt.encode(claims, self._secret, algorithm=OWN_ALGORITHM)
        identity = Identity(
            subject, name or subject, role, tenant, self.issuer, exp, "meshgate", version
        )
        return token, identity

    def looks_like_jwt(self, token: str) -> bool:
        return (
            isinstance(token, str)
            and len(token) <= MAX_TOKEN_CHARS
            and _JWT_SHAPE.fullmatch(token) is not None
        )

    async def refresh(self) -> None:
        if self.jwks is not None:
            self.unknown_kid_seen = False
            await self.jwks.refresh()

    def verify(self, token: str) -> Identity:
        if isinstance(token, str) and len(token) > MAX_TOKEN_CHARS:
            raise TokenError("token too large")
        if not self.looks_like_jwt(token):
            raise TokenError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise TokenError("token has no algorithm")
        if unverified.get("iss") == self.issuer:
            if self._secret is None:
                raise TokenError("meshgate-issued tokens are not accepted")
            return self._verify_own(token, alg)
        if self.idp is not None:
            return self._verify_idp(token, alg, header.get("kid"), self.idp)
        raise TokenError("token issuer not accepted")

    def _verify_own(self, token: str, alg: str) -> Identity:
        if alg != OWN_ALGORITHM:
            raise TokenError("token algorithm not allowed")
        assert self._secret is not None
        required = ("exp", "iat", "sub", "iss", "aud")
        claims = self._decode(token, self._secret, alg, self.audience, self.issuer, required)
        exp = self._check_times(claims, OWN_LEEWAY_SECS)
        role = claims.get("role")
        if role not in ROLES:
            raise TokenError("token has an invalid role")
        version = claims.get("ver", 0)
        if type(version) is not int or version < 0:
            raise TokenError("token has an invalid ver claim")
        identity = self._identity(claims, role, _tenant(claims.get("tenant")), exp, "meshgate")
        return replace(identity, version=version)

    def _verify_idp(self, token: str, alg: str, kid: Any, idp: IdpSettings) -> Identity:
        if alg not in idp.algorithms:
            raise TokenError("token algorithm not allowed")
        key = self._pick_key(alg, kid)
        required = ("exp", "sub", "iss", "aud")
        claims = self._decode(token, key.key, alg, idp.audience, idp.issuer, required)
        exp = self._check_times(claims, idp.leeway_secs)
        raw = _lookup(claims, idp.role_claim)  # a string, or a list of them
        values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        if any(isinstance(v, str) and v in idp.admin_values for v in values):
            role = "admin"
        elif any(isinstance(v, str) and v in idp.minter_values for v in values):
            role = "minter"
        else:
            role = "user"
        tenant = _tenant(_lookup(claims, idp.tenant_claim))
        return self._identity(claims, role, tenant, exp, "idp")

    def _pick_key(self, alg: str, kid: Any) -> JwksKey:
        assert self.jwks is not None
        if not self.jwks.keys:
            raise TokenError("identity provider keys are not loaded")
        if kid is None:
            suitable = [key for key in self.jwks.keys if key.accepts(alg)]
            if len(suitable) != 1:
                raise TokenError("token has no key id")
            return suitable[0]
        candidates = self.jwks.find(kid) if isinstance(kid, str) else []
        if not candidates:
            self.unknown_kid_seen = True
            raise TokenError("unknown key id")
        suitable = [key for key in candidates if key.accepts(alg)]
        if not suitable:
            raise TokenError("token algorithm does not match its key")
        return suitable[0]

    def _decode(
        self, token: str, key: Any, alg: str, audience: str, issuer: str, required: tuple[str, ...]
    ) -> dict[str, Any]:
        options: Any = {
            "require": list(required),
            "verify_exp": False,  # checked by _check_times with our clock
            "verify_nbf": False,
            "verify_iat": False,
            "enforce_minimum_key_length": True,
        }
        try:
            return jwt.decode(
                token, key, algorithms=[alg], audience=audience, issuer=issuer, options=options
            )
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token has no {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            message = next((m for kind, m in _DECODE_ERRORS if isinstance(exc, kind)), None)
            raise TokenError(message or "invalid token") from None

    def _check_times(self, claims: Mapping[str, Any], leeway: float) -> int:
        now = self._clock()
        exp = _timestamp(claims, "exp")
        if exp is None:
            raise TokenError("token has no exp claim")
        if exp <= now - leeway:
            raise TokenError("token expired")
        for claim, message in (
            ("nbf", "token not yet valid"),
            ("iat", "token issued in the future"),
        ):
            value = _timestamp(claims, claim)
            if value is not None and value > now + leeway:
                raise TokenError(message)
        return int(exp)

    @staticmethod
    def _identity(
        claims: Mapping[str, Any], role: str, tenant: str | None, exp: int, source: str
    ) -> Identity:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenError("token has no sub claim")
        if role in TENANT_ROLES and tenant is None:
            raise TokenError("token has no tenant")
        name = claims.get("name")
        name = name if isinstance(name, str) and name else subject
        return Identity(subject, name, role, tenant, claims["iss"], exp, source)


def _timestamp(claims: Mapping[str, Any], claim: str) -> float | None:
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(f"token has an invalid {claim} claim")
    return float(value)


def _lookup(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested objects ("realm_access.roles").

    An exact top-level name wins, so namespaced claims such as
    "https://example.com/roles" work too.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _tenant(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
