"""Probes (public): `/health`, `/liveness`, `/readiness`, `/health_generate`.

The status code is the answer, for load balancers and Kubernetes; the body
says why. Probes read state the node already maintains and never write.
"""

from __future__ import annotations

import time

from aiohttp import web

from node.api.common import json_response, node_of
from node.api.table import Audience, Route
from node.app import Node
from node.proxy.failures import REDIRECTED, log_failure
from node.workers.client import WorkerCallFailed


def readiness_of(node: Node) -> list[str]:
    """The node's readiness problems (see node.readiness), for the probes and /health/ready."""
    return node.readiness.problems()


async def health(request: web.Request) -> web.Response:
    node = node_of(request)
    status = node.raft.status()
    workers = node.pool.all()
    healthy = sum(1 for w in workers if w.routable)
    return json_response(
        {
            # Degraded also covers what readiness tolerates: no leader, no healthy worker.
            "status": "healthy" if not node.readiness.health_problems() else "degraded",
            **node.info(),
            "uptime_seconds": round(time.time() - node.started_at, 3),
            "workers": {"total": len(workers), "healthy": healthy},
            "raft": {
                "role": status.role,
                "leader": status.leader,
                "applied_index": status.applied_index,
            },
        }
    )


async def liveness(request: web.Request) -> web.Response:
    problem = node_of(request).raft.liveness_problem()
    if problem:
        return json_response({"alive": False, "reason": problem}, 503)
    return json_response({"alive": True})


async def readiness(request: web.Request) -> web.Response:
    problems = readiness_of(node_of(request))
    if problems:
        return json_response({"ready": False, "reasons": problems}, 503)
    return json_response({"ready": True})


async def health_generate(request: web.Request) -> web.Response:
    """Ask one healthy worker to prove it can generate."""
    node = node_of(request)
    workers = [w for w in node.pool.all() if w.routable]
    if not workers:
        return json_response({"healthy": False, "reason": "no healthy worker"}, 503)
    worker = min(workers, key=lambda w: w.load)
    timeout = node.config.health_check_timeout_secs * 6
    try:
        answer = await node.worker_client.get(worker.target, "/health_generate", timeout=timeout)
    except WorkerCallFailed as exc:
        log_failure(worker.id, worker.url, "GET /health_generate", exc.detail)
        body = {"healthy": False, "worker_id": worker.id, "reason": str(exc)}
        return json_response(body, 503)
    shown = {"healthy": answer.ok, "worker_id": worker.id, "worker_status": answer.status}
    if answer.redirected:
        shown["reason"] = REDIRECTED
    return json_response(shown, 200 if answer.ok else 503)


# -- the routes ------------------------------------------------------------------------------

ROUTES = (
    Route(
        "GET",
        "/health",
        health,
        Audience.PUBLIC,
        "health",
        "probes",
        "The node's status, workers and Raft role",
        answers={200: "status healthy or degraded"},
    ),
    Route(
        "GET",
        "/liveness",
        liveness,
        Audience.PUBLIC,
        "liveness",
        "probes",
        "Is the process alive (its Raft thread running)?",
        answers={200: "alive", 503: "the Raft thread has stopped"},
    ),
    Route(
        "GET",
        "/readiness",
        readiness,
        Audience.PUBLIC,
        "readiness",
        "probes",
        "Should a load balancer send traffic here?",
        answers={200: "ready", 503: "draining, or no state to serve from; the body says why"},
    ),
    Route(
        "GET",
        "/health_generate",
        health_generate,
        Audience.PUBLIC,
        "healthGenerate",
        "probes",
        "Ask one healthy worker to prove it can generate",
        answers={200: "the worker generated", 503: "no healthy worker, or it failed"},
    ),
)
