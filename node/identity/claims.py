"""What a verified token says, why one was refused, and an identity provider's settings.

Plain data, apart from the JWT library (`node.identity.tokens`), so that a node
that handles no tokens, and the settings that describe an IdP, never load PyJWT
and cryptography's X.509 (~50 ms of every start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# algorithm -> (JWK key type, required curve or None)
ASYMMETRIC_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str  # "sub"
    name: str  # "name" claim or subject
    role: str  # "admin" | "minter" | "user"
    tenant: str | None  # tenant of a user or minter (admins may have None)
    issuer: str
    expires_at: int  # exp (unix seconds)
    source: str  # "meshgate" (HS256 we issued) | "idp" (external)
    # Our tokens carry the subject's token version when issued ("ver"); a node refuses
    # tokens older than the version in the replicated state (revoked).
    version: int = 0


class TokenError(Exception):
    """Why a token was refused; `str(exc)` is safe to show the client (no token content)."""


@dataclass(frozen=True)
class IdpSettings:
    jwks_file: str | None = None
    jwks_url: str | None = None
    issuer: str = ""  # required; tokens with another `iss` are refused
    audience: str = ""  # required
    role_claim: str = "role"  # dotted path allowed, e.g. "realm_access.roles"
    admin_values: tuple[str, ...] = ("admin",)
    minter_values: tuple[str, ...] = ("minter",)
    tenant_claim: str = "tenant"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_secs: float = 30.0

    def __post_init__(self) -> None:
        if bool(self.jwks_file) == bool(self.jwks_url):
            raise ValueError("IdP: give exactly one of jwks_file or jwks_url")
        if not self.issuer or not self.audience:
            raise ValueError("IdP: issuer and audience are required")
        bad = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if not self.algorithms or bad:
            allowed = ", ".join(ASYMMETRIC_ALGORITHMS)
            raise ValueError(f"IdP: algorithms must be a non-empty subset of {allowed}")
        if not self.role_claim or not self.tenant_claim:
            raise ValueError("IdP: role_claim and tenant_claim must not be empty")
        if not math.isfinite(self.leeway_secs) or self.leeway_secs < 0:
            raise ValueError("IdP: leeway_secs must be a non-negative number")
