"""The official `openai` client, pointed at a node in front of two echo workers."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import requests

from tests.integration.conftest import Cluster

MODEL = "echo-model"


@pytest.fixture(scope="module")
def gateway(module_cluster: Cluster) -> Iterator[str]:
    _, w1 = module_cluster.echo(model=MODEL)
    _, w2 = module_cluster.echo(model=MODEL)
    node = module_cluster.node("--worker-urls", w1, w2, "--policy", "round_robin")
    yield node.url


@pytest.fixture(scope="module")
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_chat_plain(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is Raft?"}], max_tokens=7
    )
    assert reply.model == MODEL
    assert len(reply.choices[0].message.content.split()) == 7
    assert reply.usage.completion_tokens == 7
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 7


def test_chat_streaming_matches_plain_and_reports_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "stream me a story"}]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, chunks = "", None, 0
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert chunks >= 12  # relayed chunk by chunk, not as one blob
    assert text == plain.choices[0].message.content
    assert usage is not None and usage.completion_tokens == 12


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert reply.object == "text_completion"
    assert len(reply.choices[0].text.split()) == 5


def test_embeddings_are_deterministic(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model=MODEL, input=["alpha", "beta"])
    again = client.embeddings.create(model=MODEL, input="alpha")
    assert len(first.data) == 2
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding)
    assert first.data[0].embedding != first.data[1].embedding


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_models_retrieve(client: openai.OpenAI) -> None:
    model = client.models.retrieve(MODEL)
    assert model == next(iter(client.models.list()))
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "meshgate")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("org/nope")  # sent as org%2Fnope
    assert info.value.body == {
        "type": "not_found_error",
        "code": "model_not_found",
        "message": "the model 'org/nope' does not exist",
        "param": "model",
    }


def test_unknown_model_is_a_clear_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(info.value) and MODEL in str(info.value)


def test_request_id_is_propagated_and_generated(gateway: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    given = requests.post(
        gateway + "/v1/chat/completions", json=body, headers={"x-request-id": "req-123"}, timeout=10
    )
    assert given.status_code == 200
    assert given.headers["x-request-id"] == "req-123"
    fresh = requests.post(gateway + "/v1/chat/completions", json=body, timeout=10)
    assert len(fresh.headers["x-request-id"]) == 32


def test_native_generate_plain_and_stream(gateway: str) -> None:
    body = {"text": "hello", "sampling_params": {"max_new_tokens": 4}}
    plain = requests.post(gateway + "/generate", json=body, timeout=10)
    assert plain.status_code == 200 and len(plain.json()["text"].split()) == 4
    with requests.post(
        gateway + "/generate", json={**body, "stream": True}, stream=True, timeout=10
    ) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert len(lines) >= 4


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v1/rerank", {"query": "cat", "documents": ["a cat", "a dog"]}),
        ("/rerank", {"query": "cat", "documents": ["a cat", "a dog"]}),
        (
            "/v1/messages",
            {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("/v1/classify", {"model": MODEL, "input": "good"}),
        ("/v1/responses", {"model": MODEL, "input": "hi"}),
    ],
)
def test_other_protected_routes_are_proxied(gateway: str, path: str, body: dict) -> None:
    resp = requests.post(gateway + path, json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("x-meshgate-worker")
