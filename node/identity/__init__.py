"""Who a JWT bearer says it is, and the admin credential behind meshgate's own tokens.

Kept apart from `node/auth.py` (API keys) so that the cryptographic rules for
tokens — which key may verify which token, which algorithms are allowed, how
passwords are stored — live in one small place that can be reviewed on its own.
"""

from __future__ import annotations

from node.identity.jwks import JwksCache, JwksError, JwksKey, parse_jwks
from node.identity.passwords import (
    hash_password,
    hash_password_cli,
    parse_admin_credential,
    verify_password,
)
from node.identity.tokens import Identity, IdpSettings, TokenError, TokenService

__all__ = [
    "Identity",
    "IdpSettings",
    "JwksCache",
    "JwksError",
    "JwksKey",
    "TokenError",
    "TokenService",
    "hash_password",
    "hash_password_cli",
    "parse_admin_credential",
    "parse_jwks",
    "verify_password",
]
