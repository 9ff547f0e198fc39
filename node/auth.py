"""Who is calling: API keys and control-plane keys, checked per route group.

Route groups (seed 001):
- public: no credentials.
- protected (the inference API): the node's `--api-key`, or any control-plane
  key, when any credential is configured; open only when none is (which the
  config allows on loopback alone).
- control-plane: an admin control-plane key when such keys are configured;
  otherwise the API key; otherwise (loopback, no auth) open.

Keys are kept only as SHA-256 digests and compared with `hmac.compare_digest`
against every configured digest, so neither the time taken nor a log line
reveals a key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from node.errors import ApiError


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    name: str
    role: str  # admin | user
    kind: str  # api_key | control_plane_key | anonymous


ANONYMOUS = Principal("anonymous", "anonymous", "admin", "anonymous")
_API_KEY_PRINCIPAL = Principal("api-key", "api-key", "user", "api_key")


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return request.headers.get("X-API-Key") or None


class Authenticator:
    def __init__(self, api_key: str | None, control_plane_keys: list[str]) -> None:
        self._api_key = digest(api_key) if api_key else None
        self._control: list[tuple[Principal, bytes]] = []
        for spec in control_plane_keys:
            key_id, name, role, key = spec.split(":", 3)
            self._control.append((Principal(key_id, name, role, "control_plane_key"), digest(key)))

    @property
    def configured(self) -> bool:
        return self._api_key is not None or bool(self._control)

    def identify(self, token: str | None) -> Principal | None:
        """The principal a token belongs to, or None. Every digest is compared."""
        if token is None:
            return None
        presented = digest(token)
        found: Principal | None = None
        if self._api_key is not None and hmac.compare_digest(presented, self._api_key):
            found = _API_KEY_PRINCIPAL
        for principal, key in self._control:
            if hmac.compare_digest(presented, key):
                found = principal
        return found

    def protected(self, request: web.Request) -> Principal:
        if not self.configured:
            return ANONYMOUS
        principal = self.identify(presented_token(request))
        if principal is None:
            raise _unauthorized("this route needs an API key")
        return principal

    def control_plane(self, request: web.Request) -> Principal:
        if not self.configured:
            return ANONYMOUS
        principal = self.identify(presented_token(request))
        if self._control:
            if principal is None or principal.kind != "control_plane_key":
                raise _unauthorized("this control-plane route needs an admin control-plane key")
            if principal.role != "admin":
                raise ApiError(
                    403, f"key {principal.id!r} has role {principal.role}; admin is required"
                )
            return principal
        if principal is None:
            raise _unauthorized("this control-plane route needs the API key")
        return principal


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        f"{message}: send 'Authorization: Bearer <key>'",
        headers={"WWW-Authenticate": 'Bearer realm="meshgate"'},
    )
