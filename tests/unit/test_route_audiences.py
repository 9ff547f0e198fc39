"""Who may call each route, pinned: a route's audience is a reviewed decision.

The route table picks each route's guard from its `audience`, and the access-matrix
test (tests/integration/test_access_matrix.py) checks every answer against the
README's table for that audience; neither can tell a route declared with the wrong
audience. This list can: it was taken from the hand-written OpenAPI operations the
table replaced (their `x-meshgate-auth`), and a new route, or a changed audience,
must be added here on purpose.
"""

from __future__ import annotations

import pytest

from node.api.catalog import ROUTES
from node.api.register import CHECK_THEIR_OWN
from node.api.table import Audience, Route

PINNED: dict[tuple[str, str], Audience] = {
    ("DELETE", "/api/admin/tenants/{name}"): Audience.MANAGEMENT_ADMIN,
    ("DELETE", "/api/keys/{key_id}"): Audience.MANAGEMENT,
    ("DELETE", "/api/models/{name}"): Audience.MANAGEMENT,
    ("DELETE", "/api/models/{name}/publish"): Audience.MANAGEMENT_MINTER,
    ("DELETE", "/ha/config/{key:.+}"): Audience.CONTROL_PLANE,
    ("DELETE", "/ha/members/{name}"): Audience.CONTROL_PLANE,
    ("DELETE", "/ha/rate-limit/{scope}"): Audience.CONTROL_PLANE,
    ("DELETE", "/policies/{model_id}"): Audience.CONTROL_PLANE,
    ("DELETE", "/workers/{worker_id}"): Audience.CONTROL_PLANE,
    ("GET", "/admin/circuit-breaker"): Audience.CONTROL_PLANE,
    ("GET", "/admin/config"): Audience.CONTROL_PLANE,
    ("GET", "/api/admin/audit"): Audience.MANAGEMENT_ADMIN,
    ("GET", "/api/admin/system"): Audience.MANAGEMENT_ADMIN,
    ("GET", "/api/admin/tenants"): Audience.MANAGEMENT_ADMIN,
    ("GET", "/api/keys"): Audience.MANAGEMENT,
    ("GET", "/api/keys/{key_id}"): Audience.MANAGEMENT,
    ("GET", "/api/models"): Audience.MANAGEMENT,
    ("GET", "/api/models/{name}"): Audience.MANAGEMENT,
    ("GET", "/api/models/{name}/publish"): Audience.MANAGEMENT,
    ("GET", "/api/published-models"): Audience.MANAGEMENT,
    ("GET", "/engine_metrics"): Audience.PUBLIC,
    ("GET", "/get_loads"): Audience.CONTROL_PLANE,
    ("GET", "/get_model_info"): Audience.PUBLIC,
    ("GET", "/get_server_info"): Audience.PUBLIC,
    ("GET", "/ha/config"): Audience.CONTROL_PLANE,
    ("GET", "/ha/config/{key:.+}"): Audience.CONTROL_PLANE,
    ("GET", "/ha/health"): Audience.CONTROL_PLANE,
    ("GET", "/ha/local"): Audience.MESH,
    ("GET", "/ha/blobs/{sha256}"): Audience.MESH,
    ("GET", "/ha/traffic"): Audience.MESH,
    ("GET", "/v1/tokenizers"): Audience.CONTROL_PLANE,
    ("POST", "/v1/tokenizers"): Audience.CONTROL_PLANE,
    ("GET", "/v1/tokenizers/{tokenizer_id}"): Audience.CONTROL_PLANE,
    ("GET", "/v1/tokenizers/{tokenizer_id}/status"): Audience.CONTROL_PLANE,
    ("DELETE", "/v1/tokenizers/{tokenizer_id}"): Audience.CONTROL_PLANE,
    ("GET", "/wasm"): Audience.CONTROL_PLANE,
    ("POST", "/wasm"): Audience.CONTROL_PLANE,
    ("PATCH", "/wasm/{module_uuid}"): Audience.CONTROL_PLANE,
    ("DELETE", "/wasm/{module_uuid}"): Audience.CONTROL_PLANE,
    ("GET", "/ha/policies"): Audience.CONTROL_PLANE,
    ("GET", "/ha/policies/{model_id}"): Audience.CONTROL_PLANE,
    ("GET", "/ha/rate-limit"): Audience.CONTROL_PLANE,
    ("GET", "/ha/rate-limit/stats"): Audience.CONTROL_PLANE,
    ("GET", "/ha/requests/{request_id}"): Audience.CONTROL_PLANE,
    ("GET", "/ha/status"): Audience.CONTROL_PLANE,
    ("GET", "/ha/workers"): Audience.CONTROL_PLANE,
    ("GET", "/ha/workers/{worker_id}"): Audience.CONTROL_PLANE,
    ("GET", "/health"): Audience.PUBLIC,
    ("GET", "/health/ready"): Audience.PUBLIC,
    ("GET", "/health_generate"): Audience.PUBLIC,
    ("GET", "/info"): Audience.CONTROL_PLANE,
    ("GET", "/liveness"): Audience.PUBLIC,
    ("GET", "/metrics"): Audience.PUBLIC,
    ("GET", "/openapi.json"): Audience.PUBLIC,
    # The console's page and files: no data in them (every piece comes from the API).
    ("GET", "/ui"): Audience.PUBLIC,
    ("GET", "/ui/{path:.*}"): Audience.PUBLIC,
    ("GET", "/policies"): Audience.CONTROL_PLANE,
    ("GET", "/policies/{model_id}"): Audience.CONTROL_PLANE,
    ("GET", "/readiness"): Audience.PUBLIC,
    ("GET", "/v1/models"): Audience.PUBLIC,
    ("GET", "/v1/models/{model:.+}"): Audience.PUBLIC,
    ("GET", "/workers"): Audience.CONTROL_PLANE,
    ("GET", "/workers/{worker_id}"): Audience.CONTROL_PLANE,
    ("GET", "/ws"): Audience.WEBSOCKET,
    ("PATCH", "/workers/{worker_id}"): Audience.CONTROL_PLANE,
    ("POST", "/admin/circuit-breaker/reset"): Audience.CONTROL_PLANE,
    ("POST", "/admin/reload"): Audience.CONTROL_PLANE,
    ("POST", "/api/admin/login"): Audience.PUBLIC,
    ("POST", "/api/admin/logout"): Audience.TOKEN,
    ("POST", "/api/admin/tenants"): Audience.MANAGEMENT_ADMIN,
    ("POST", "/api/admin/users/{username}/revoke-tokens"): Audience.MANAGEMENT_ADMIN,
    ("POST", "/api/keys"): Audience.MANAGEMENT_MINTER,
    ("POST", "/api/keys/{key_id}/rotate"): Audience.MANAGEMENT,
    ("POST", "/api/models"): Audience.MANAGEMENT,
    ("POST", "/api/models/{name}/predict"): Audience.MANAGEMENT,
    ("POST", "/api/models/{name}/publish"): Audience.MANAGEMENT_MINTER,
    ("POST", "/api/models/{name}/publish/rotate-key"): Audience.MANAGEMENT_MINTER,
    ("POST", "/api/validate-api-key"): Audience.MANAGEMENT,
    ("GET", "/api/whoami"): Audience.MANAGEMENT,
    ("POST", "/flush_cache"): Audience.CONTROL_PLANE,
    ("POST", "/generate"): Audience.PROTECTED,
    ("POST", "/ha/config"): Audience.CONTROL_PLANE,
    ("POST", "/ha/drain"): Audience.CONTROL_PLANE,
    ("POST", "/ha/members"): Audience.CONTROL_PLANE,
    ("POST", "/ha/rate-limit"): Audience.CONTROL_PLANE,
    ("POST", "/ha/shutdown"): Audience.CONTROL_PLANE,
    # Parser utilities: like inference, any credential but a publication key.
    ("POST", "/parse/function_call"): Audience.PROTECTED,
    ("POST", "/parse/reasoning"): Audience.PROTECTED,
    ("POST", "/models/{name}/{tail:.*}"): Audience.PUBLISHED,
    ("POST", "/rerank"): Audience.PROTECTED,
    ("POST", "/v1/chat/completions"): Audience.PROTECTED,
    ("POST", "/v1/classify"): Audience.PROTECTED,
    ("POST", "/v1/completions"): Audience.PROTECTED,
    ("POST", "/v1/embeddings"): Audience.PROTECTED,
    ("POST", "/v1/messages"): Audience.PROTECTED,
    ("POST", "/v1/rerank"): Audience.PROTECTED,
    ("POST", "/v1/responses"): Audience.PROTECTED,
    ("POST", "/v1/tokenize"): Audience.PROTECTED,
    ("POST", "/v1/detokenize"): Audience.PROTECTED,
    ("POST", "/workers"): Audience.CONTROL_PLANE,
    ("POST", "/workers/{worker_id}/drain"): Audience.CONTROL_PLANE,
    ("PUT", "/admin/config"): Audience.CONTROL_PLANE,
    ("PUT", "/api/models/{name}"): Audience.MANAGEMENT,
    ("PUT", "/api/models/{name}/publish"): Audience.MANAGEMENT_MINTER,
    ("PUT", "/policies/{model_id}"): Audience.CONTROL_PLANE,
    ("PUT", "/workers/{worker_id}"): Audience.CONTROL_PLANE,
}
# Routes whose handlers authenticate the caller themselves (no guard in front).
SELF_CHECKED = {
    ("GET", "/ws"),
    ("POST", "/generate"),
    ("POST", "/models/{name}/{tail:.*}"),
    ("POST", "/rerank"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/classify"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/rerank"),
    ("POST", "/v1/responses"),
}


def test_every_route_has_its_reviewed_audience() -> None:
    declared = {(route.method, route.path): route.audience for route in ROUTES}
    assert declared == PINNED


def test_only_the_reviewed_routes_check_credentials_themselves() -> None:
    assert {(r.method, r.path) for r in ROUTES if r.checks_credentials} == SELF_CHECKED
    assert {r.audience for r in ROUTES if r.checks_credentials} <= CHECK_THEIR_OWN


def test_a_route_of_another_audience_cannot_skip_its_guard() -> None:
    from aiohttp import web

    from node.api.register import register

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    skipping = Route(
        "POST",
        "/ha/oops",
        handler,
        Audience.CONTROL_PLANE,
        "oops",
        "ha",
        "a route that would skip its guard",
        answers={200: "ok"},
        checks_credentials=True,
    )
    with pytest.raises(ValueError, match="control_plane"):
        register(web.Application(), [skipping])
