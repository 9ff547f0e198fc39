"""`GET /api/whoami`: who the caller's credential is (the console asks it at sign-in).

A managed key, an IdP token, a token meshgate issued or a static key: the answer says
whether the caller is an admin and which tenant it belongs to, so a page shows only what
the API would let it use. It shows no secret, only the principal the node resolved.
"""

from __future__ import annotations

from aiohttp import web

from node.api.common import json_response
from node.api.table import Audience, Route
from node.auth import Principal


async def whoami(_: web.Request, principal: Principal) -> web.Response:
    key = principal.key or {}
    expires_at = key.get("expires_at")
    return json_response(
        {
            "name": principal.name,
            "kind": principal.kind,
            "role": principal.role,
            "admin": principal.is_admin,
            "tenant": principal.tenant,
            "expiresAt": expires_at if isinstance(expires_at, int | float) else None,
        }
    )


ROUTES = (
    Route(
        "GET",
        "/api/whoami",
        whoami,
        Audience.MANAGEMENT,
        "whoami",
        "management",
        "Who the caller's credential is: name, kind, role, admin, tenant",
        answers={200: "name, kind, role, admin, tenant, expiresAt (seconds, or null)"},
        current_first=False,
    ),
)
