"""The echo worker as a real process, driven over HTTP and through the `openai` client.

Most tests share one worker (its faults and stats reset before each test);
behaviour chosen by flags gets a worker of its own.
"""

from __future__ import annotations

import base64
import math
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import requests

from tests.support import Proc, start_echo_worker, wait_for

MODEL = "test-model"
DEFAULT_FAULTS = {
    "fail_rate": None,
    "fail_status": None,
    "latency_ms": 0,
    "token_delay_ms": 0,
    "cut_stream_after": None,
    "health_status": 200,
    "redirect_to": None,
    "usage_total_tokens": None,
}


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    proc, url = start_echo_worker(tmp_path_factory.mktemp("echo"), model=MODEL)
    try:
        yield proc, url
    finally:
        proc.stop()


@pytest.fixture
def url(worker: tuple[Proc, str]) -> str:
    base = worker[1]
    requests.post(base + "/_faults", json=DEFAULT_FAULTS, timeout=5).raise_for_status()
    requests.post(base + "/_stats/reset", timeout=5).raise_for_status()
    return base


@pytest.fixture
def client(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=10) as c:
        yield c


def chat(url: str, content: str = "hello", **extra: Any) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}
    return requests.post(url + "/v1/chat/completions", json=body, timeout=10)


def sse_lines(response: requests.Response) -> Iterator[str]:
    for line in response.iter_lines(decode_unicode=True):
        if line:
            yield line


def stats(url: str) -> dict[str, Any]:
    return requests.get(url + "/_stats", timeout=5).json()


# --- the openai client -------------------------------------------------------------------


def test_openai_chat_plain(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "what is a mesh gateway"}]
    result = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12)
    assert result.object == "chat.completion"
    assert result.id.startswith("chatcmpl-")
    assert result.model == MODEL
    assert result.choices[0].finish_reason == "length"
    assert len(result.choices[0].message.content.split()) == 12
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 12)
    again = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12)
    assert again.choices[0].message.content == result.choices[0].message.content


def test_openai_chat_stream_matches_plain_and_reports_usage(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "stream this please"}]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=9)
    pieces: list[str] = []
    finish_reasons: list[str | None] = []
    usage = None
    with client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                assert chunk.choices == []
                usage = chunk.usage
                continue
            delta = chunk.choices[0].delta
            pieces.append(delta.content or "")
            finish_reasons.append(chunk.choices[0].finish_reason)
    assert "".join(pieces) == plain.choices[0].message.content
    assert finish_reasons[-1] == "length"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 9, 12)


def test_openai_completions(client: openai.OpenAI) -> None:
    result = client.completions.create(model=MODEL, prompt="once upon a time", max_tokens=6)
    assert result.object == "text_completion"
    assert len(result.choices[0].text.split()) == 6
    assert result.usage is not None
    assert result.usage.prompt_tokens == 4
    stream = client.completions.create(
        model=MODEL, prompt="once upon a time", max_tokens=6, stream=True
    )
    with stream:
        streamed = "".join(chunk.choices[0].text for chunk in stream)
    assert streamed == result.choices[0].text


def test_openai_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model=MODEL, input=["alpha", "beta"])
    second = client.embeddings.create(model=MODEL, input="alpha")
    alpha, beta = (item.embedding for item in first.data)
    assert len(alpha) == 32
    assert second.data[0].embedding == alpha
    assert alpha != beta
    assert math.isclose(math.sqrt(sum(v * v for v in alpha)), 1.0, rel_tol=1e-5)
    floats = client.embeddings.create(
        model=MODEL, input="alpha", encoding_format="float", dimensions=32
    )
    assert floats.data[0].embedding == pytest.approx(alpha, abs=1e-6)
    small = client.embeddings.create(model=MODEL, input="x", dimensions=8)
    assert len(small.data[0].embedding) == 8


def test_openai_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].owned_by == "meshgate-echo"


def test_openai_responses(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="hello there", max_output_tokens=5)
    assert response.status == "completed"
    assert len(response.output_text.split()) == 5


# --- native routes -----------------------------------------------------------------------


def test_generate_plain_and_stream(url: str) -> None:
    body = {"text": "sglang native", "sampling_params": {"max_new_tokens": 7}}
    plain = requests.post(url + "/generate", json=body, timeout=10).json()
    assert len(plain["text"].split()) == 7
    assert plain["meta_info"]["finish_reason"] == {"type": "length", "length": 7}
    assert plain["meta_info"]["completion_tokens"] == 7
    with requests.post(url + "/generate", json={**body, "stream": True}, stream=True) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = list(sse_lines(r))
    assert lines[-1] == "data: [DONE]"
    chunks = [orjson.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert len(chunks) == 7
    assert chunks[-1]["text"] == plain["text"]
    assert chunks[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 7}
    assert chunks[0]["meta_info"]["finish_reason"] is None


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_rerank_orders_by_relevance(url: str, path: str) -> None:
    docs = ["blue sky", "red apple pie recipe", {"text": "apple tart"}, "red apple"]
    body = {"query": "red apple pie", "documents": docs, "top_n": 3}
    result = requests.post(url + path, json=body, timeout=10).json()
    assert [r["index"] for r in result["results"]] == [1, 3, 2]
    scores = [r["relevance_score"] for r in result["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert result["results"][2]["document"] == {"text": "apple tart"}


def test_anthropic_messages_and_classify(url: str) -> None:
    body = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    message = requests.post(url + "/v1/messages", json=body, timeout=10).json()
    assert message["type"] == "message"
    assert message["stop_reason"] == "max_tokens"
    assert len(message["content"][0]["text"].split()) == 4
    assert message["usage"] == {"input_tokens": 1, "output_tokens": 4}
    classified = requests.post(url + "/v1/classify", json={"input": ["a", "b"]}, timeout=10)
    data = classified.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert all(math.isclose(sum(d["probs"]), 1.0) for d in data)


def test_identity_and_request_id_headers(url: str, worker: tuple[Proc, str]) -> None:
    response = requests.get(url + "/v1/models", headers={"x-request-id": "req-42"}, timeout=5)
    assert response.headers["x-request-id"] == "req-42"
    assert response.headers["x-echo-worker"] == f"echo-{url.rsplit(':', 1)[1]}"
    assert requests.get(url + "/nope", timeout=5).headers["x-echo-worker"]
    assert f"listening on {url} model={MODEL}" in worker[0].log()


# --- errors, faults, stats -----------------------------------------------------------------


def test_bad_json_and_bad_messages_get_400(url: str) -> None:
    bad = requests.post(url + "/v1/chat/completions", data=b"{not json", timeout=5)
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert requests.post(url + "/v1/chat/completions", json=[1], timeout=5).status_code == 400
    assert chat(url, messages=[]).status_code == 400
    assert chat(url, max_tokens=-1).status_code == 400


def test_runtime_fault_switch_fails_then_recovers(url: str) -> None:
    assert chat(url).status_code == 200
    changed = requests.post(url + "/_faults", json={"fail_status": 429}, timeout=5).json()
    assert changed["fail_status"] == 429
    failed = chat(url)
    assert failed.status_code == 429
    assert failed.json()["error"]["type"] == "server_error"
    embed = requests.post(url + "/v1/embeddings", json={"input": "x"}, timeout=5)
    assert embed.status_code == 429
    assert requests.get(url + "/health", timeout=5).status_code == 200
    assert requests.get(url + "/v1/models", timeout=5).status_code == 200
    requests.post(url + "/_faults", json={"fail_status": None}, timeout=5).raise_for_status()
    assert chat(url).status_code == 200


def test_runtime_fail_rate_fails_some_requests(url: str) -> None:
    requests.post(url + "/_faults", json={"fail_rate": 0.5}, timeout=5).raise_for_status()
    statuses = [chat(url, max_tokens=1).status_code for _ in range(40)]
    assert 0 < statuses.count(500) < 40
    assert set(statuses) == {200, 500}


def test_bad_fault_values_are_rejected(url: str) -> None:
    for bad in ({"fail_rate": 2}, {"health_status": 42}, {"latency_ms": "slow"}, {"x": 1}):
        response = requests.post(url + "/_faults", json=bad, timeout=5)
        assert response.status_code == 400, bad
    assert requests.get(url + "/_faults", timeout=5).json() == DEFAULT_FAULTS


def test_health_status_switch(url: str) -> None:
    requests.post(url + "/_faults", json={"health_status": 503}, timeout=5).raise_for_status()
    assert requests.get(url + "/health", timeout=5).status_code == 503
    assert requests.get(url + "/health_generate", timeout=5).status_code == 503
    assert chat(url).status_code == 200
    requests.post(url + "/_faults", json={"health_status": 200}, timeout=5).raise_for_status()
    assert requests.get(url + "/health", timeout=5).status_code == 200


def chat_requests_metric(url: str) -> float:
    """`echo_requests_total` of the chat route, which (unlike `/_stats`) is never reset."""
    prefix = 'echo_requests_total{route="/v1/chat/completions"} '
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def test_stats_count_requests_and_in_flight(url: str) -> None:
    metric_before = chat_requests_metric(url)
    assert chat(url).status_code == 200
    assert chat(url).status_code == 200
    assert requests.post(url + "/v1/embeddings", json={"input": "x"}, timeout=5).ok
    counted = stats(url)
    assert counted["requests"]["/v1/chat/completions"] == 2
    assert counted["requests"]["/v1/embeddings"] == 1
    assert counted["in_flight"] == 0
    assert counted["model"] == MODEL
    requests.post(url + "/_faults", json={"latency_ms": 700}, timeout=5).raise_for_status()
    slow = threading.Thread(target=chat, args=(url,))
    slow.start()
    try:
        wait_for(lambda: stats(url)["in_flight"] == 1, timeout=5, what="request in flight")
        assert requests.get(url + "/get_load", timeout=5).json()["load"] == 1
    finally:
        slow.join(timeout=10)
    wait_for(lambda: stats(url)["in_flight"] == 0, timeout=5, what="in-flight drained")
    assert stats(url)["requests"]["/v1/chat/completions"] == 3
    requests.post(url + "/_stats/reset", timeout=5).raise_for_status()
    assert stats(url)["requests"] == {}
    assert chat_requests_metric(url) == metric_before + 3


def test_client_disconnect_mid_stream_is_quiet(url: str, worker: tuple[Proc, str]) -> None:
    requests.post(url + "/_faults", json={"token_delay_ms": 20}, timeout=5).raise_for_status()
    body = {"messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 50}
    with requests.post(url + "/v1/chat/completions", json=body, stream=True, timeout=10) as r:
        first = next(sse_lines(r))
        assert first.startswith("data: ")
    wait_for(lambda: stats(url)["in_flight"] == 0, timeout=5, what="stream handler finished")
    assert chat(url).status_code == 200
    assert "Traceback" not in worker[0].log()


def test_info_routes(url: str) -> None:
    info = requests.get(url + "/get_model_info", timeout=5).json()
    assert info["model_path"] == MODEL
    assert info["is_generation"] is True
    server = requests.get(url + "/get_server_info", timeout=5).json()
    assert server["served_model_name"] == MODEL
    assert server["version"].startswith("echo-")
    flushed = requests.post(url + "/flush_cache", timeout=5)
    assert flushed.json() == {"status": "ok", "flushed": True}


# --- flags -------------------------------------------------------------------------------


def test_fail_rate_flag_fails_every_inference_request(tmp_path: Path) -> None:
    proc, url = start_echo_worker(tmp_path, "--fail-rate", "1.0", model=MODEL)
    try:
        for _ in range(5):
            response = chat(url)
            assert response.status_code == 500
            assert response.json()["error"]["message"] == "injected failure"
        assert requests.get(url + "/v1/models", timeout=5).status_code == 200
        assert requests.get(url + "/_faults", timeout=5).json()["fail_rate"] == 1.0
    finally:
        assert proc.stop() == 0


def test_cut_stream_after_flag_ends_stream_without_done(tmp_path: Path) -> None:
    proc, url = start_echo_worker(tmp_path, "--cut-stream-after", "3", model=MODEL)
    lines: list[str] = []
    try:
        body = {"messages": [{"role": "user", "content": "cut"}], "stream": True}
        with (
            requests.post(url + "/v1/chat/completions", json=body, stream=True, timeout=10) as r,
            pytest.raises(requests.exceptions.ChunkedEncodingError),
        ):
            lines.extend(sse_lines(r))
        assert "data: [DONE]" not in lines
        assert len(lines) == 4  # the role chunk, then three words
        assert chat(url).status_code == 200  # plain answers are unaffected
        assert "Traceback" not in proc.log()
    finally:
        assert proc.stop() == 0


def _decode_base64_embedding(value: str) -> list[float]:
    raw = base64.b64decode(value)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_base64_embeddings_over_http(url: str) -> None:
    body = {"input": [[1, 2, 3]], "encoding_format": "base64", "dimensions": 4}
    data = requests.post(url + "/v1/embeddings", json=body, timeout=5).json()
    vector = _decode_base64_embedding(data["data"][0]["embedding"])
    assert len(vector) == 4
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    assert data["usage"]["prompt_tokens"] == 3
