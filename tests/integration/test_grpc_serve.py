"""OpenAI routes served by gRPC workers, end to end: `meshgate serve` in front of two
`grpc-echo-worker`s and one HTTP `echo-worker` for the same model, all scripted to
answer with think tags and a tool call; the node parses both kinds of output.

The official `openai` client gets the same answers, in the same shapes, whichever
worker served; then (the HTTP worker removed) the gRPC faults: a bad request is not
retried, a client that hangs up reaches the engine as `Abort`, and a worker killed
mid-stream ends the stream with the SSE error event while the next request goes to
the other worker. The wire check decodes the bytes the engine received with the
pinned stubs, field by field."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.grpc_echo.record import raw_bytes
from node.localmesh import GrpcEchoWorker
from node.text.tokenizer import load_tokenizer
from node.text.variables import RESERVED_VARIABLES
from tests.grpc_wire import recorded, wire_fields
from tests.integration.conftest import Cluster
from tests.integration.test_output_parsers import ASK, QWEN_REPLY, TOOLS
from tests.support import wait_for
from tests.tokenizer_files import build_tokenizer_dir
from tests.wasm_components import module_bytes

MODEL = "m"
# The scripted reply the output parser tests give HTTP workers, here given to both kinds.
REPLY = QWEN_REPLY
STREAMED = {
    "model": MODEL,
    "messages": ASK,
    "tools": TOOLS,
    "max_tokens": 200,
    "stream": True,
    "stream_options": {"include_usage": True},
}


class Mesh:
    def __init__(self, url: str, grpc: dict[str, GrpcEchoWorker], records: dict[str, Path]):
        self.url, self.grpc, self.records = url, grpc, records
        self.http_id = ""


def workers(url: str) -> list[dict[str, Any]]:
    return list(requests.get(url + "/workers", timeout=5).json()["workers"])


def register(url: str, fields: dict[str, Any]) -> str:
    added = requests.post(url + "/workers", json=fields, timeout=5)
    assert added.status_code == 202, added.text
    worker = f"{url}/workers/{added.json()['worker_id']}"
    wait_for(lambda: requests.get(worker, timeout=5).json()["status"] == "ready", what="ready")
    return str(added.json()["worker_id"])


@pytest.fixture(scope="module")
def mesh(module_cluster: Cluster) -> Iterator[Mesh]:
    tok_dir = build_tokenizer_dir(module_cluster.tmp_path / "tok", "qwen25")
    _, http = module_cluster.echo("--reply-text", REPLY, model=MODEL)
    node = module_cluster.node(
        "--worker-urls",
        http,
        "--policy",
        "round_robin",
        "--tool-call-parser",
        "qwen25",
        "--reasoning-parser",
        "qwen3",
        "--enable-wasm",
    )
    grpc, records = {}, {}
    for name in ("a", "b"):
        record = module_cluster.tmp_path / f"record-{name}.jsonl"
        flags = ("--reply-text", REPLY, "--token-delay-ms", "2", "--record-file", str(record))
        worker = module_cluster.grpc_echo(tok_dir, *flags, model=MODEL)
        fields = {"url": worker.url, "model_id": MODEL, "tokenizer_path": str(tok_dir)}
        worker_id = register(node.url, fields)
        grpc[worker_id], records[worker_id] = worker, record
    found = Mesh(node.url, grpc, records)
    (found.http_id,) = [w["id"] for w in workers(node.url) if w["url"] == http]
    found.tok = load_tokenizer(tok_dir)  # type: ignore[attr-defined]
    yield found


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mesh.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def shape(value: Any) -> Any:
    """The JSON's structure: keys and value types, not the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k != "prompt_tokens_details"}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def by_worker(mesh: Mesh, ask: Any) -> dict[str, Any]:
    """`ask()` -> (worker id, answer) until every worker has answered once."""
    seen: dict[str, Any] = {}
    for _ in range(9):
        worker, answer = ask()
        seen.setdefault(worker, answer)
        if len(seen) == 3:
            return seen
    raise AssertionError(f"round_robin reached only {sorted(seen)}")


def summary(message: Any) -> tuple[Any, ...]:
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    return message.model_extra["reasoning_content"], message.content, calls


def test_whole_answers_are_the_same_whichever_worker_served(
    mesh: Mesh, client: openai.OpenAI
) -> None:
    def ask() -> tuple[str, Any]:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=ASK, tools=TOOLS, max_tokens=200
        )
        return raw.headers["x-meshgate-worker"], (raw.parse(), raw.http_response.json())

    answers = by_worker(mesh, ask)
    parsed = {w: summary(a[0].choices[0].message) for w, a in answers.items()}
    want = ("Is it cold?", "Let me check.", [("get_weather", {"city": "Paris"})])
    assert list(parsed.values()) == [want] * 3
    assert {a[0].choices[0].finish_reason for a in answers.values()} == {"tool_calls"}
    shapes = [shape(a[1]) for a in answers.values()]
    assert shapes[0] == shapes[1] == shapes[2], shapes
    assert all(a[0].usage.completion_tokens > 0 for a in answers.values())


def sse(resp: requests.Response) -> list[Any]:
    events = [e for e in resp.text.strip().split("\n\n")]
    return [json.loads(e[6:]) if e != "data: [DONE]" else "[DONE]" for e in events]


def test_streams_are_the_same_whichever_worker_served(mesh: Mesh, client: openai.OpenAI) -> None:
    body = STREAMED

    def ask_raw() -> tuple[str, Any]:
        resp = requests.post(mesh.url + "/v1/chat/completions", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.headers["x-meshgate-worker"], sse(resp)

    streams = by_worker(mesh, ask_raw)
    for events in streams.values():
        assert events[-1] == "[DONE]" and events[-2]["choices"] == []
        assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"
    shapes = [
        (shape(e[0]), shape(e[-3]), shape(e[-2]), {json.dumps(shape(c)) for c in e[1:-3]})
        for e in streams.values()
    ]
    assert shapes[0] == shapes[1] == shapes[2], shapes

    def ask_sdk() -> tuple[str, Any]:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=ASK, tools=TOOLS, max_tokens=200, stream=True
        )
        reasoning, content, args, names = "", "", "", ""
        for chunk in raw.parse():
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            content += delta.content or ""
            for call in delta.tool_calls or ():
                names += call.function.name or ""
                args += call.function.arguments or ""
        return raw.headers["x-meshgate-worker"], (reasoning, content, names, json.loads(args))

    answers = by_worker(mesh, ask_sdk)
    want = ("Is it cold?", "Let me check.", "get_weather", {"city": "Paris"})
    assert list(answers.values()) == [want] * 3


def generates(mesh: Mesh, prefix: str) -> list[tuple[str, pb.GenerateRequest]]:
    """(worker id, request) of every Generate whose request id starts with `prefix`."""
    found = []
    for worker, path in mesh.records.items():
        for entry in recorded(path) if path.exists() else []:
            message = pb.GenerateRequest.FromString(raw_bytes(entry))
            if message.request_id.startswith(prefix + "-"):
                found.append((worker, message))
    return found


def test_the_engine_gets_the_templated_tokens_field_by_field(mesh: Mesh) -> None:
    body = {
        "model": MODEL,
        "messages": ASK,
        "temperature": 0.5,
        "max_tokens": 50,
        "stop": ["zzz"],
        "stream": True,
    }
    for attempt in range(3):  # round robin: one of three lands on the HTTP worker
        rid = f"wire-{attempt}"
        headers = {"X-Request-Id": rid}
        resp = requests.post(
            mesh.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        assert resp.status_code == 200
        if resp.headers["x-meshgate-worker"] != mesh.http_id:
            break
    [(_, message)] = generates(mesh, rid)
    text = mesh.tok.apply_chat_template(ASK)  # type: ignore[attr-defined]
    assert wire_fields(message) == {
        "request_id": message.request_id,
        "tokenized": {
            "original_text": text,
            "input_ids": mesh.tok.encode(text, add_special_tokens=False),  # type: ignore[attr-defined]
        },
        "sampling_params": {
            "temperature": 0.5,
            "top_p": 1.0,
            "top_k": -1,
            "repetition_penalty": 1.0,
            "max_new_tokens": 50,
            "stop": ["zzz"],
            "skip_special_tokens": True,
            "spaces_between_special_tokens": True,
            "n": 1,
        },
        "stream": True,
    }


def chat_as(mesh: Mesh, request_id: str, content: str) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    headers = {"X-Request-Id": request_id}
    return requests.post(mesh.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_without_the_http_worker_grpc_faults(mesh: Mesh, client: openai.OpenAI) -> None:
    """The HTTP worker leaves: what follows is served by the two gRPC workers alone."""
    rerank = {"model": MODEL, "query": "q", "documents": ["a", "b"]}
    for _ in range(3):  # a route engines do not serve goes to the HTTP worker, every time
        resp = requests.post(mesh.url + "/v1/rerank", json=rerank, timeout=10)
        assert resp.status_code == 200 and resp.headers["x-meshgate-worker"] == mesh.http_id
    gone = requests.delete(f"{mesh.url}/workers/{mesh.http_id}", timeout=10)
    assert gone.status_code == 200, gone.text
    wait_for(
        lambda: mesh.http_id not in [w["id"] for w in workers(mesh.url)],
        what="the HTTP worker removed",
    )

    resp = requests.post(mesh.url + "/v1/rerank", json=rerank, timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "route_not_served_over_grpc"
    assert "add an HTTP worker" in resp.json()["error"]["message"]

    # INVALID_ARGUMENT: a 400 with the engine's reason, tried on one worker only.
    resp = chat_as(mesh, "invalid", "[[fail:INVALID_ARGUMENT]]")
    assert resp.status_code == 400, resp.text
    assert "INVALID_ARGUMENT" in resp.json()["error"]["message"]
    assert len(generates(mesh, "invalid")) == 1
    # a worker's answer names the request and the worker, as an HTTP worker's does
    assert resp.headers["x-request-id"] == "invalid"
    assert resp.headers["x-meshgate-worker"] in mesh.grpc

    # chat_template_kwargs may not replace what the request sets: a 400, never a 500.
    for key in sorted(RESERVED_VARIABLES):
        body = {"model": MODEL, "messages": ASK, "chat_template_kwargs": {key: "x"}}
        headers = {"X-Request-Id": f"kwargs-{key}"}
        resp = requests.post(
            f"{mesh.url}/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == "chat_template_kwargs"
        assert key in resp.json()["error"]["message"] and not generates(mesh, f"kwargs-{key}")

    # UNAVAILABLE: tried on the other worker too, then a 503.
    resp = chat_as(mesh, "unavailable", "[[fail:UNAVAILABLE]]")
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "engine_unavailable"
    assert {w for w, _ in generates(mesh, "unavailable")} == set(mesh.grpc)
    assert resp.headers["x-request-id"] == "unavailable"  # the last worker's answer
    assert resp.headers["x-meshgate-worker"] in mesh.grpc

    # Embeddings come from the engine's Embed.
    embedded = client.embeddings.create(model=MODEL, input="Hello there")
    assert len(embedded.data[0].embedding) > 0 and embedded.usage.prompt_tokens > 0


def test_completions_generate_choices_logprobs_and_stop_strings(
    mesh: Mesh, client: openai.OpenAI
) -> None:
    tok: Any = mesh.tok  # type: ignore[attr-defined]
    done = client.completions.create(model=MODEL, prompt="Hello there", max_tokens=5)
    assert done.choices[0].finish_reason == "length" and done.choices[0].text
    assert done.usage is not None and done.usage.completion_tokens == 5
    assert done.usage.prompt_tokens == len(tok.encode("Hello there"))

    body = {"text": "Hello", "sampling_params": {"max_new_tokens": 3}}
    native = requests.post(mesh.url + "/generate", json=body, timeout=10).json()
    assert native["meta_info"]["finish_reason"] == {"type": "length", "length": 3}
    assert native["meta_info"]["completion_tokens"] == 3 and native["text"]

    chat = client.chat.completions.create(
        model=MODEL, messages=ASK, n=2, logprobs=True, top_logprobs=2, stop=["check"]
    )
    assert [c.index for c in chat.choices] == [0, 1]
    for choice in chat.choices:
        assert choice.finish_reason == "stop"
        assert choice.message.content == "Let me "  # cut before the stop string
        assert choice.message.model_extra["reasoning_content"] == "Is it cold?"
        assert choice.logprobs is not None and choice.logprobs.content
        assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)


def set_stream_interval(mesh: Mesh, tokens: int) -> None:
    put = requests.put(mesh.url + "/admin/config", json={"grpc_stream_interval": tokens}, timeout=5)
    assert put.status_code == 200, put.text

    def applied() -> bool:
        config = requests.get(mesh.url + "/admin/config", timeout=5).json()["config"]
        return bool(config["grpc_stream_interval"] == tokens)

    wait_for(applied, what=f"grpc_stream_interval {tokens}")


def said(events: list[Any]) -> tuple[str, str, str]:
    """A stream's reasoning, content and tool-call arguments, joined."""
    deltas = [c["delta"] for e in events[:-1] for c in e["choices"]]
    calls = [call for d in deltas for call in d.get("tool_calls") or ()]
    return (
        "".join(d.get("reasoning_content") or "" for d in deltas),
        "".join(d.get("content") or "" for d in deltas),
        "".join(c["function"].get("arguments") or "" for c in calls),
    )


def test_a_stream_interval_puts_several_tokens_in_each_engine_message(mesh: Mesh) -> None:
    """--grpc-stream-interval (a runtime setting): the engine is asked for N tokens per
    message; the client gets the same answer and usage, in fewer chunks."""
    body = STREAMED

    def ask(rid: str) -> list[Any]:
        headers = {"X-Request-Id": rid}
        resp = requests.post(
            mesh.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        assert resp.status_code == 200, resp.text
        return sse(resp)

    per_token = ask("interval-1")
    set_stream_interval(mesh, 4)
    try:
        batched = ask("interval-4")
    finally:
        set_stream_interval(mesh, 1)
    [(_, one)], [(_, four)] = generates(mesh, "interval-1"), generates(mesh, "interval-4")
    assert not one.sampling_params.HasField("stream_interval")
    assert four.sampling_params.stream_interval == 4
    assert said(batched) == said(per_token) == ("Is it cold?", "Let me check.", '{"city": "Paris"}')
    assert batched[-2]["usage"] == per_token[-2]["usage"]
    assert batched[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert len(batched) < len(per_token)


def test_a_client_that_hangs_up_aborts_the_generation(mesh: Mesh) -> None:
    hang = [{"role": "user", "content": "[[hang]]"}]
    body = {"model": MODEL, "messages": hang, "stream": True}
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            mesh.url + "/v1/chat/completions",
            json=body,
            headers={"X-Request-Id": "gone"},
            timeout=(5, 0.5),
        )
    [(worker, message)] = generates(mesh, "gone")

    def aborted() -> bool:
        aborts = recorded(mesh.records[worker], "abort")
        return any(a["request"]["request_id"] == message.request_id for a in aborts)

    wait_for(aborted, what="the Abort of the generation")


def test_a_worker_killed_mid_stream_ends_it_with_the_error_event(mesh: Mesh) -> None:
    long = [{"role": "user", "content": "[[reply:" + "word " * 500 + "]]"}]
    body = {"model": MODEL, "messages": long, "stream": True, "max_tokens": 600}
    with requests.post(
        mesh.url + "/v1/chat/completions", json=body, stream=True, timeout=10
    ) as resp:
        assert resp.status_code == 200
        worker = resp.headers["x-meshgate-worker"]
        lines = resp.iter_lines()
        assert next(lines).startswith(b"data: ")
        mesh.grpc[worker].proc.kill()
        rest = b"\n".join(lines)
    assert b"event: error" in rest and b"stream_interrupted" in rest
    assert b"[DONE]" not in rest
    after = requests.post(
        mesh.url + "/v1/chat/completions",
        json={"model": MODEL, "messages": ASK, "max_tokens": 200},
        timeout=10,
    )
    assert after.status_code == 200, after.text
    (other,) = set(mesh.grpc) - {worker}
    assert after.headers["x-meshgate-worker"] == other


def test_an_on_response_module_sees_a_grpc_stream_before_its_first_byte(mesh: Mesh) -> None:
    """Only gRPC workers are left: a trapping OnResponse module fails the stream at once."""
    module = {
        "name": "trap-on-response",
        "wasm_base64": base64.b64encode(module_bytes("trap_on_response")).decode(),
        "module_type": "Middleware",
        "attach_points": [{"Middleware": "OnResponse"}],
    }
    added = requests.post(mesh.url + "/wasm", json={"modules": [module]}, timeout=10)
    assert added.status_code == 200, added.text
    module_id = added.json()["modules"][0]["add_result"]["Success"]
    body = {"model": MODEL, "messages": ASK, "stream": True, "max_tokens": 50}

    def stream() -> requests.Response:
        return requests.post(mesh.url + "/v1/chat/completions", json=body, timeout=10)

    wait_for(lambda: stream().status_code == 500, what="the module ready")
    failed = stream()
    assert failed.json()["error"]["code"] == "WASM_MODULE_FAILED"
    assert "trap-on-response" in failed.json()["error"]["message"]
    gone = requests.delete(f"{mesh.url}/wasm/{module_id}", timeout=10)
    assert gone.status_code == 200, gone.text
    wait_for(lambda: stream().status_code == 200, what="the module removed")
