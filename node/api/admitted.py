"""Inference-like CPU routes (tokenize, detokenize, the parser utilities) held to the
checks inference requests pass: the WASM OnRequest chain (a gate: an auth module guards
them too; a node without --enable-wasm refuses them while a module may not be skipped),
the mesh-wide rate limits, the caller's key and
tenant quotas (one request each, no tokens), and this node's admission (429 with
Retry-After when full). Their work then runs in `node.cpu_pool`."""

from __future__ import annotations

from aiohttp import web

from node.api.common import bounded_body, node_of
from node.api.table import Handler
from node.auth import Principal
from node.pipeline.limits import admit, caller_subjects, enforce_rate_limits, take_quota
from node.pipeline.pipeline import Pipeline
from node.pipeline.request import request_id_of
from node.pipeline.settle import release_lease
from node.wasm_required import refuse_without_wasm


def admitted(handler: Handler) -> Handler:
    """`handler`, run only once the request is within every limit."""

    async def run(request: web.Request, principal: Principal) -> web.StreamResponse:
        node = node_of(request)
        await _wasm_gate(request, node.pipeline)
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


async def _wasm_gate(request: web.Request, pipeline: Pipeline) -> None:
    """OnRequest as on an inference request; its changes are not applied (WasmHooks.guard)."""
    if pipeline.wasm is None:
        refuse_without_wasm(pipeline.state())
        return
    body = await bounded_body(request)
    await pipeline.wasm.guard(request, body, request_id_of(request, pipeline.request_id_headers))
