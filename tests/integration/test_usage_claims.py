"""A worker that reports absurd usage cannot break the usage listings.

The echo worker's `usage_total_tokens` switch makes it claim any count: 2**64 - 1
(which orjson can still parse, and two of which it can no longer write out),
negative, fractional or not a number at all. The listings keep answering, with
totals no larger than the per-request clamp allows.
"""

from __future__ import annotations

import requests

from node.limits.usage import MAX_TOKENS_PER_REQUEST
from tests.integration.conftest import Cluster
from tests.support import strong, wait_for

MODEL = "echo-model"
ADMIN = strong("usage-claims-admin")
MESSAGES = [{"role": "user", "content": "hi"}]


def test_absurd_usage_from_a_worker_leaves_the_listings_working(cluster: Cluster) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node(
        "--worker-urls", worker, "--control-plane-api-keys", f"ops:ops:admin:{ADMIN}"
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    requests.post(node.url + "/api/admin/tenants", json={"name": "shop"}, headers=admin, timeout=5)
    user = requests.post(
        node.url + "/api/keys", json={"namespace": "shop"}, headers=admin, timeout=5
    ).json()["apiKey"]
    as_user = {"Authorization": f"Bearer {user}"}
    model = {"name": "assistant", "modelId": MODEL}
    assert requests.post(node.url + "/api/models", json=model, headers=as_user).status_code == 201
    published = requests.post(  # an admin publishes (roles that may vary with the version)
        node.url + "/api/models/assistant/publish?namespace=shop",
        json={"config": {}},
        headers=admin,
    )
    assert published.status_code == 201, published.text
    key = {"X-API-Key": published.json()["publishedModel"]["apiKey"]}

    claims = [2**64 - 1, 2**64 - 1, -5, 7.5, "lots", 2**63]
    for claim in claims:
        requests.post(worker + "/_faults", json={"usage_total_tokens": claim}, timeout=5)
        plain = requests.post(
            node.url + "/models/assistant/predict", json={"messages": MESSAGES}, headers=key
        )
        assert plain.status_code == 200, plain.text
    with requests.post(
        node.url + "/models/assistant/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True},
        headers=key,
        stream=True,
        timeout=10,
    ) as streamed:
        assert streamed.status_code == 200
        assert b"[DONE]" in b"".join(streamed.iter_content())
    calls = len(claims) + 1

    def listed() -> dict:
        resp = requests.get(node.url + "/api/published-models", headers=as_user, timeout=5)
        assert resp.status_code == 200, resp.text
        usage = resp.json()["publishedModels"][0]["usage"]
        return usage if usage["totalRequests"] == calls else {}

    usage = wait_for(listed, what="every call counted in the listing")
    assert 0 < usage["tokensUsed"] <= calls * MAX_TOKENS_PER_REQUEST
    one = requests.get(node.url + "/api/models/assistant/publish", headers=as_user, timeout=5)
    assert one.status_code == 200 and one.json()["usage"]["tokensUsed"] == usage["tokensUsed"]
