"""The route table of the whole node: every API module's routes, in one tuple.

The OpenAPI document, the access-matrix test and the router all read it.
`GET /ws` is installed together with the feed behind it (`node.api.live`).
"""

from __future__ import annotations

from typing import Final

from node.api import (
    admin,
    blobs,
    docs,
    ha,
    health,
    live,
    manage,
    models,
    openai,
    ops,
    parse,
    policies,
    text,
    tokenizers,
    wasm,
    whoami,
    workers,
)
from node.api.table import Route
from node.console import routes as console

WITHOUT_FEED: Final[tuple[Route, ...]] = (
    *health.ROUTES,
    *openai.ROUTES,
    *parse.ROUTES,
    *text.ROUTES,
    *workers.ROUTES,
    *policies.ROUTES,
    *ops.ROUTES,
    *ha.ROUTES,
    *blobs.ROUTES,
    *tokenizers.ROUTES,
    *wasm.ROUTES,
    *admin.ROUTES,
    *manage.ROUTES,
    *whoami.ROUTES,
    *models.ROUTES,
    *docs.ROUTES,
    *console.ROUTES,
)
ROUTES: Final[tuple[Route, ...]] = (*WITHOUT_FEED, *live.ROUTES)
