"""The auth guard of each audience: what runs before a route's handler, chosen by the table.

A guard authenticates the request, stores the principal on it (for the audit
log) and calls the handler with it, or raises the 401/403 (429) that refuses
it. Routes whose handler checks its credential itself (`checks_credentials`)
get no guard: the inference pipeline counts refused requests in its metrics,
a published path answers 404 before it reveals anything, and the WebSocket
handshake takes its credential from a query parameter or subprotocol too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from aiohttp import web

from node.api.common import node_of
from node.api.table import Audience, Handler
from node.app import Node
from node.auth import PRINCIPAL, Authenticator, Principal
from node.errors import ApiError
from node.ha.peers import MESH_TOKEN_HEADER
from node.limits.quotas import Subject

Guard = Callable[[Handler], Handler]


def _principal_guard(authenticate: Callable[[Authenticator, web.Request], Principal]) -> Guard:
    def guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = authenticate(node_of(request).auth, request)
            request[PRINCIPAL] = principal
            return await handler(request, principal)

        return guarded

    return guard


# Only control-plane (admin) credentials.
control_plane: Final = _principal_guard(Authenticator.control_plane)
# Any valid credential but a publication key (open only when none is configured).
protected: Final = _principal_guard(Authenticator.protected)


def mesh(handler: Handler) -> Handler:
    """A peer's mesh token (derived from the mesh secret, so never well known), or else a
    control-plane credential. The handler gets no principal for a peer."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        node = node_of(request)
        token = request.headers.get(MESH_TOKEN_HEADER)
        if token is None:
            principal: Principal | None = node.auth.control_plane(request)
            request[PRINCIPAL] = principal
        elif node.mesh_keys.accepts_token(token):
            principal = None
        else:
            raise ApiError(401, "bad mesh token")
        return await handler(request, principal)

    return guarded


def management(admin: bool) -> Guard:
    """The management API: a tenant's credential (or an admin), within the per-user limit."""

    def guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            node = node_of(request)
            principal = node.auth.authenticated(request)
            request[PRINCIPAL] = principal
            if admin and not principal.is_admin:
                raise ApiError(403, "Insufficient permissions: admin role required")
            if not principal.is_admin and not principal.tenant:
                raise ApiError(403, "this credential is not bound to a tenant")
            headers = await _admit_user(node, principal)
            response = await handler(request, principal)
            response.headers.update(headers)
            return response

        return guarded

    return guard


async def _admit_user(node: Node, principal: Principal) -> dict[str, str]:
    """The per-user management limit (admins, who operate the mesh, are exempt)."""
    limits = node.management_limits
    if principal.is_admin or limits is None:
        return {}
    decision = await node.quotas.admit([Subject("mgmt", principal.id, limits)])
    if decision.lease is not None:
        await decision.lease.release(0)
    headers = decision.headers()
    if not decision.allowed:
        retry_after = max(1, math.ceil(decision.retry_after))
        raise ApiError(
            429,
            f"too many management requests from {principal.id}; retry after {retry_after}s",
            code="rate_limited",
            headers={"Retry-After": str(retry_after), **headers},
        )
    return headers


def _unguarded(handler: Handler) -> Handler:
    return handler


# The minter and token audiences are checked further by their handlers (role, token kind).
# Published and WebSocket routes have no guard here: their handlers check credentials, and a
# route of theirs that does not say so (`checks_credentials`) fails at install.
GUARDS: Final[dict[Audience, Guard]] = {
    Audience.PUBLIC: _unguarded,
    Audience.PROTECTED: protected,
    Audience.MANAGEMENT: management(admin=False),
    Audience.MANAGEMENT_MINTER: management(admin=False),
    Audience.TOKEN: management(admin=False),
    Audience.MANAGEMENT_ADMIN: management(admin=True),
    Audience.CONTROL_PLANE: control_plane,
    Audience.MESH: mesh,
}
