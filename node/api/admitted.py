"""Inference-like CPU routes (tokenize, detokenize, the parser utilities) held to the
limits inference requests pass: the mesh-wide rate limits, the caller's key and
tenant quotas (one request each, no tokens), and this node's admission (429 with
Retry-After when full). Their work then runs in `node.cpu_pool`."""

from __future__ import annotations

from aiohttp import web

from node.api.common import node_of
from node.api.table import Handler
from node.auth import Principal
from node.pipeline.limits import admit, caller_subjects, enforce_rate_limits, take_quota
from node.pipeline.settle import release_lease


def admitted(handler: Handler) -> Handler:
    """`handler`, run only once the request is within every limit."""

    async def run(request: web.Request, principal: Principal) -> web.StreamResponse:
        node = node_of(request)
        await enforce_rate_limits(node.ratelimiter, [None])
        quota = await take_quota(node.quotas, caller_subjects(node.raft.state, principal))
        try:
            await admit(node.admission)
        except BaseException:
            await release_lease(quota)
            raise
        try:
            response = await handler(request, principal)
        finally:
            node.admission.release()
            await release_lease(quota)
        if quota is not None:
            response.headers.update(quota.headers())
        return response

    return run
