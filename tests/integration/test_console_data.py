"""What the console reads besides the API it always had: CORS for a console on another
origin (attacker style: near-miss origins get nothing), the /ws handshake's Origin check,
and `GET /ha/traffic` after known traffic, on one node and across the mesh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests

from node.localmesh import LocalMesh
from tests.support import TEST_NODE_FLAGS, strong

ADMIN = strong("admin-key-console")
AUTH = {"Authorization": f"Bearer {ADMIN}"}
GOOD = "https://console.example"
DEV = "http://localhost:5173"
NEAR_MISSES = (
    "https://evil.example",
    "null",
    f"{GOOD}/",
    f"{GOOD}/path",
    "HTTPS://CONSOLE.EXAMPLE",
    "https://Console.example",
    "https://console.example.evil.com",
    "https://evil.com.console.example",
    "http://console.example",
    "https://console.example:443",
    "https://console.example:8443",
    f"{GOOD}, https://evil.example",
    "*",
)
LATENCY_MS = 40


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    m = LocalMesh(
        tmp_path_factory.mktemp("console-data"),
        nodes=2,
        node_args=[
            *TEST_NODE_FLAGS,
            "--control-plane-api-keys",
            f"ops:ops:admin:{ADMIN}",
            "--cors-origins",
            GOOD,
            DEV,
            "--disable-retries",
        ],
    )
    try:
        m.start_workers()
        m.start_nodes()
        m.wait_ready(headers=AUTH)
        yield m
    finally:
        m.stop()


def _cors_headers(resp: requests.Response) -> set[str]:
    return {h for h in resp.headers if h.lower().startswith("access-control-")}


def test_a_listed_origin_gets_preflights_and_readable_answers(mesh: LocalMesh) -> None:
    url = mesh.urls[0]
    for origin in (GOOD, DEV):
        pre = requests.options(
            url + "/workers",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
            timeout=5,
        )
        assert pre.status_code == 204, pre.text
        assert pre.headers["Access-Control-Allow-Origin"] == origin
        assert pre.headers["Access-Control-Allow-Credentials"] == "true"
        assert {"GET", "POST"} <= set(pre.headers["Access-Control-Allow-Methods"].split(", "))
        allowed = pre.headers["Access-Control-Allow-Headers"].lower().split(", ")
        for header in ("authorization", "content-type", "idempotency-key", "x-request-id"):
            assert header in allowed
        assert "x-meshgate-min-index" in allowed and "x-meshgate-mesh-token" not in allowed
        assert int(pre.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in pre.headers["Vary"]
    answer = requests.get(url + "/workers", headers={**AUTH, "Origin": GOOD}, timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == GOOD
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = answer.headers["Access-Control-Expose-Headers"]
    for header in ("X-Meshgate-Index", "Retry-After", "Location", "X-Request-Id"):
        assert header in exposed
    refused = requests.get(url + "/workers", headers={"Origin": GOOD}, timeout=5)
    assert refused.status_code == 401  # the page may read why (its token expired)
    assert refused.headers["Access-Control-Allow-Origin"] == GOOD
    no_route = requests.options(
        url + "/nowhere", headers={"Origin": GOOD, "Access-Control-Request-Method": "GET"}
    )
    assert no_route.status_code == 404 and no_route.json()["error"]["message"]


def test_near_miss_origins_get_no_cors_at_all(mesh: LocalMesh) -> None:
    url = mesh.urls[0]
    for origin in NEAR_MISSES:
        pre = requests.options(
            url + "/workers",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            timeout=5,
        )
        assert pre.status_code == 403, (origin, pre.text)
        assert pre.json()["error"]["code"] == "CORS_ORIGIN_NOT_ALLOWED"
        assert not _cors_headers(pre), origin
        read = requests.get(url + "/workers", headers={**AUTH, "Origin": origin}, timeout=5)
        assert read.status_code == 200  # a tool may send anything; a browser will not show it
        assert not _cors_headers(read), origin
        assert "Origin" in read.headers["Vary"]
    plain = requests.options(url + "/workers", timeout=5)  # not a preflight: no CORS part
    assert plain.status_code == 405 and not _cors_headers(plain)


def test_the_websocket_handshake_checks_the_origin(mesh: LocalMesh) -> None:
    url = mesh.urls[0]
    ws = url.replace("http://", "ws://") + "/ws"
    protocol = [f"bearer.{ADMIN}"]

    async def handshake(origin: str | None, proxied: bool = False) -> int | dict[str, Any]:
        headers = {"Origin": origin} if origin else {}
        if proxied:  # a proxy that rewrote Host says which host the page used
            headers |= {"Host": "10.0.0.9:8080", "X-Forwarded-Host": "gw.example"}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(ws, headers=headers, protocols=protocol) as sock:
                    hello: dict[str, Any] = await sock.receive_json(timeout=5)
                    return hello
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    async def every() -> list[int | dict[str, Any]]:
        own = url  # the node's own pages (the console it serves)
        origins = [GOOD, DEV, own, None, "https://evil.example", "null", f"{GOOD}.evil.com"]
        return list(
            await asyncio.gather(
                *(handshake(o) for o in origins),
                handshake("https://gw.example", proxied=True),
                handshake("https://evil.example", proxied=True),
            )
        )

    good, dev, own, tool, evil, null, near, proxied, evil_proxied = asyncio.run(every())
    for opened in (good, dev, own, tool, proxied):
        assert isinstance(opened, dict) and opened["type"] == "hello", opened
    assert evil == null == near == evil_proxied == 403


def _chat(url: str, model: str = "echo-model", stream: bool = False) -> requests.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    resp = requests.post(url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10)
    resp.content  # noqa: B018  # the whole stream, so the request is over
    return resp


def _faults(worker: str, **settings: Any) -> None:
    requests.post(worker + "/_faults", json=settings, timeout=5).raise_for_status()


def _total(columns: dict[str, list[Any]], name: str) -> int:
    return sum(columns[name])


def test_traffic_counts_and_percentiles_after_known_traffic(mesh: LocalMesh) -> None:
    first, second = mesh.urls
    worker = mesh.worker_urls[0]
    requests.post(
        worker + "/_faults", json={"latency_ms": LATENCY_MS}, timeout=5
    ).raise_for_status()
    assert all(_chat(first).status_code == 200 for _ in range(8))
    assert all(_chat(first, stream=True).status_code == 200 for _ in range(4))
    assert all(_chat(first, model="no-such-model").status_code == 404 for _ in range(3))
    _faults(worker, fail_status=500)
    assert all(_chat(first).status_code >= 500 for _ in range(2))
    _faults(worker, fail_status=None, latency_ms=0)
    assert _chat(second).status_code == 200

    answer = requests.get(first + "/ha/traffic?minutes=1", headers=AUTH, timeout=5).json()
    assert answer["bucket_secs"] == 10 and answer["minutes"] == 1
    ((name, node),) = answer["nodes"].items()
    assert name == "n1" and len(node["at"]) == 6
    echo = node["models"]["echo-model"]
    assert _total(echo, "requests") == 14 and _total(echo, "errors") == 2
    assert _total(echo, "rejected") == 0  # the worker's 500s are errors, not refusals
    assert _total(node["total"], "requests") == 17 and _total(node["total"], "rejected") == 3
    assert sum(node["total"]["requests_per_s"]) > 0
    busiest = max(range(6), key=lambda i: echo["requests"][i])
    assert LATENCY_MS <= echo["latency_p50_ms"][busiest] < LATENCY_MS * 1.5
    streamed = [ms for ms in echo["ttft_p50_ms"] if ms is not None]  # in one bucket or two
    assert streamed and min(streamed) >= LATENCY_MS
    assert echo["latency_p99_ms"][busiest] >= echo["latency_p50_ms"][busiest]
    started = next(i for i in range(6) if echo["requests"][i])  # it may span two buckets
    assert set(echo["latency_p50_ms"][:started]) <= {None}  # nothing before the traffic

    whole = requests.get(second + "/ha/traffic?scope=mesh&minutes=2", headers=AUTH, timeout=5)
    nodes = whole.json()["nodes"]
    assert set(nodes) == {"n1", "n2"} and whole.json()["missing"] == []
    assert _total(nodes["n1"]["total"], "requests") == 17
    assert _total(nodes["n2"]["models"]["echo-model"], "requests") == 1
    # Superscript, circled, fullwidth and Arabic-Indic digits are digits to str.isdigit().
    unicode = ("minutes=%C2%B2", "minutes=%E2%91%A0", "minutes=%EF%BC%95", "minutes=%D9%A3")
    for query in ("minutes=0", "minutes=31", "minutes=x", "minutes=1&minutes=2", "scope=all"):
        bad = requests.get(f"{first}/ha/traffic?{query}", headers=AUTH, timeout=5)
        assert bad.status_code == 400 and bad.json()["error"]["param"] in query, query
    for query in unicode:
        bad = requests.get(f"{first}/ha/traffic?{query}", headers=AUTH, timeout=5)
        assert bad.status_code == 400, query
        assert "ASCII digits" in bad.json()["error"]["message"], query
    assert requests.get(first + "/ha/traffic", timeout=5).status_code == 401


def test_a_peer_that_does_not_answer_is_listed_missing(mesh: LocalMesh) -> None:
    first = mesh.urls[0]
    mesh.nodes[1].proc.kill()
    answer = requests.get(first + "/ha/traffic?scope=mesh", headers=AUTH, timeout=10).json()
    assert set(answer["nodes"]) == {"n1"}
    assert [m["node"] for m in answer["missing"]] == ["n2"] and answer["missing"][0]["error"]
