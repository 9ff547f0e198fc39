"""Prefill/decode (PD) pairs over HTTP on a real 3-node mesh.

Two prefill and two decode echo workers serve `pd-model`; the mesh's own echo
worker serves `echo-model` as a regular worker. A decode echo worker answers
only once the prefill named by the request's `bootstrap_host:bootstrap_port` has
seen the same `bootstrap_room` (node/echo/pd.py), and both kinds refuse (and
count) a request without the bootstrap fields. So a 200 through the gateway means
the pair met; the workers' room lists show each request reached exactly one
prefill and one decode with the same room.

`pd-grpc-model` is served by a gRPC prefill and a gRPC decode grpc-echo-worker
(the decode's Generate waits until the prefill's bootstrap server has seen the
room of its `disaggregated_params`); their record files hold what the node sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from node.localmesh import EchoWorker, GrpcEchoWorker
from node.localmesh.process import free_ports
from tests.cluster.conftest import MODEL, Mesh
from tests.grpc_wire import recorded, recorded_request, wire_fields
from tests.support import wait_for
from tests.tokenizer_files import build_tokenizer_dir

PD_MODEL = "pd-model"
LONELY = "lonely-model"
GRPC_PD = "pd-grpc-model"
MIXED = "mixed-model"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello pairs"}], "max_tokens": 4}


class PdMesh:
    def __init__(
        self,
        mesh: Mesh,
        prefills: list[EchoWorker],
        decodes: list[EchoWorker],
        grpc: tuple[GrpcEchoWorker, GrpcEchoWorker],
        records: tuple[Path, Path],
        bootstrap_port: int,
    ):
        self.mesh = mesh
        self.prefills = prefills
        self.decodes = decodes
        self.grpc = grpc  # (prefill, decode)
        self.records = records  # their record files
        self.bootstrap_port = bootstrap_port  # the gRPC prefill's

    @property
    def pd_workers(self) -> list[EchoWorker]:
        return self.prefills + self.decodes


def _echo(tmp: Path, port: int, *flags: str) -> EchoWorker:
    return EchoWorker(tmp, port, PD_MODEL, extra=flags)


def _engine(tmp: Path, port: int, tok: Path, record: Path, *flags: str) -> GrpcEchoWorker:
    """A grpc-echo-worker for `pd-grpc-model` in disaggregation mode flags[0]."""
    extra = ("--disaggregation-mode", *flags, "--record-file", str(record))
    return GrpcEchoWorker(tmp, port, tok, GRPC_PD, extra=extra)


def _register(url: str, body: dict[str, Any]) -> str:
    resp = requests.post(url + "/workers", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["worker_id"])


@pytest.fixture(scope="module")
def pd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdMesh]:
    tmp = tmp_path_factory.mktemp("pd")
    ports = free_ports(9)
    records = (tmp / "grpc-prefill.jsonl", tmp / "grpc-decode.jsonl")
    tok = build_tokenizer_dir(tmp / "tok", style="llama3")
    bootstrap = ("--bootstrap-port", str(ports[8]))
    grpc = (
        _engine(tmp, ports[6], tok, records[0], "prefill", *bootstrap),
        _engine(tmp, ports[7], tok, records[1], "decode"),
    )
    prefills = [
        _echo(
            tmp, ports[i], "--disaggregation-mode", "prefill", "--bootstrap-port", str(ports[i + 4])
        )
        for i in (0, 1)
    ]
    decodes = [_echo(tmp, ports[i], "--disaggregation-mode", "decode") for i in (2, 3)]
    mesh = Mesh(tmp, extra=("--worker-startup-check-interval", "0.2"))
    try:
        for worker in prefills + decodes:
            worker.wait_healthy()
        for engine in grpc:
            engine.wait_listening(timeout=15)
        mesh.wait_ready()
        url = mesh.nodes[0].url
        # The first prefill names its bootstrap port; discovery reads the second's.
        _register(
            url, {"url": prefills[0].url, "worker_type": "prefill", "bootstrap_port": ports[4]}
        )
        _register(url, {"url": prefills[1].url, "worker_type": "prefill"})
        for worker in decodes:
            _register(url, {"url": worker.url, "worker_type": "decode"})
        # A prefill with no decode partner (the same process, under another address).
        lonely = prefills[0].url.replace("127.0.0.1", "localhost")
        _register(url, {"url": lonely, "model_id": LONELY, "worker_type": "prefill"})
        # gRPC halves: discovery reads the prefill's bootstrap port from GetServerInfo. The
        # tokenizer is named by path: every node loads it at once, from its own disk.
        engine = {"tokenizer_path": str(tok)}
        _register(url, {"url": grpc[0].url, "worker_type": "prefill", **engine})
        _register(url, {"url": grpc[1].url, "worker_type": "decode", **engine})
        # A model whose halves are on different transports never pairs.
        mixed = (prefills[1].url, grpc[1].url)
        _register(url, {"url": _alias(mixed[0]), "model_id": MIXED, "worker_type": "prefill"})
        _register(
            url, {"url": _alias(mixed[1]), "model_id": MIXED, "worker_type": "decode", **engine}
        )

        def all_ready() -> bool:
            for node in mesh.nodes:
                body = requests.get(node.url + "/workers", timeout=5).json()
                if body["stats"]["healthy_count"] != 10:
                    return False
                # A gRPC half serves once this node has loaded its tokenizer.
                engines = [w for w in body["workers"] if w["connection_mode"] == "grpc"]
                if not all(w["tokenizer_loaded"] for w in engines):
                    return False
            return True

        wait_for(all_ready, timeout=20, what="the PD workers ready on every node")
        yield PdMesh(mesh, prefills, decodes, grpc, records, ports[8])
    finally:
        mesh.stop()
        for worker in prefills + decodes:
            worker.proc.stop()
        for engine in grpc:
            engine.proc.stop()


def _alias(url: str) -> str:
    """The same worker under another address."""
    return url.replace("127.0.0.1", "localhost")


def _stats(worker: EchoWorker) -> dict[str, Any]:
    return requests.get(worker.url + "/_stats", timeout=5).json()  # type: ignore[no-any-return]


def _reset(pd: PdMesh) -> None:
    for worker in pd.pd_workers:
        requests.post(worker.url + "/_stats/reset", timeout=5).raise_for_status()


def _rooms(workers: list[EchoWorker]) -> list[list[int]]:
    return [_stats(w)["pd"]["rooms"] for w in workers]


def _set_policy(pd: PdMesh, policy: str) -> None:
    url = pd.mesh.nodes[0].url
    resp = requests.put(f"{url}/policies/{PD_MODEL}", json={"policy": policy}, timeout=10)
    assert resp.status_code in (200, 201), resp.text
    index = resp.headers["X-Meshgate-Index"]
    for node in pd.mesh.nodes:  # every node has applied it before the requests
        requests.get(node.url + "/ha/status", headers={"X-Meshgate-Min-Index": index}, timeout=10)


def _chat(url: str, model: str = PD_MODEL) -> requests.Response:
    return requests.post(url + "/v1/chat/completions", json={"model": model, **CHAT}, timeout=20)


def _assert_paired(pd: PdMesh, sent: int) -> tuple[list[list[int]], list[list[int]]]:
    """Each request reached exactly one prefill and one decode, with the same room."""
    prefill_rooms, decode_rooms = _rooms(pd.prefills), _rooms(pd.decodes)
    on_prefills = Counter(r for rooms in prefill_rooms for r in rooms)
    on_decodes = Counter(r for rooms in decode_rooms for r in rooms)
    assert len(on_decodes) == sent and set(on_decodes.values()) == {1}
    assert on_prefills == on_decodes
    assert all(0 <= room < 2**63 for room in on_decodes)
    assert all(_stats(w)["pd"]["regular_requests"] == 0 for w in pd.pd_workers)
    return prefill_rooms, decode_rooms


@pytest.mark.parametrize("policy", ["round_robin", "least_load", "power_of_two", "cache_aware"])
def test_each_request_goes_to_one_prefill_and_one_decode_with_one_room(
    pd: PdMesh, policy: str
) -> None:
    _set_policy(pd, policy)
    _reset(pd)
    sent = 9
    for i in range(sent):  # through every node in turn
        resp = _chat(pd.mesh.nodes[i % 3].url)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        decode = resp.headers["X-Meshgate-Worker"]
        assert decode != resp.headers["X-Meshgate-Prefill-Worker"]
    prefill_rooms, decode_rooms = _assert_paired(pd, sent)
    if policy == "round_robin":  # each node alternates its halves
        assert all(prefill_rooms) and all(decode_rooms)
    before = _grpc_rooms(pd)
    for node in pd.mesh.nodes:
        resp = _chat(node.url, GRPC_PD)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        assert resp.headers["X-Meshgate-Prefill-Worker"] != resp.headers["X-Meshgate-Worker"]
    _assert_grpc_paired(pd, before, 3)


def _grpc_rooms(pd: PdMesh) -> tuple[list[int], list[int]]:
    """The rooms each gRPC half got, in order (from its record)."""
    prefill, decode = ([e["bootstrap"]["room"] for e in recorded(path)] for path in pd.records)
    return prefill, decode


def _assert_grpc_paired(pd: PdMesh, before: tuple[list[int], list[int]], sent: int) -> list[int]:
    """`sent` more requests each reached the gRPC prefill and decode with the same room."""
    prefill, decode = _grpc_rooms(pd)
    new = decode[len(before[1]) :]
    assert len(new) == sent and len(set(new)) == sent
    assert sorted(prefill[len(before[0]) :]) == sorted(new)
    return new


def test_regular_requests_never_reach_pd_workers(pd: PdMesh) -> None:
    _reset(pd)
    regular = pd.mesh.workers[0]
    requests.post(regular.url + "/_stats/reset", timeout=5).raise_for_status()
    for node in pd.mesh.nodes:
        resp = _chat(node.url, MODEL)
        assert resp.status_code == 200, resp.text
        assert "X-Meshgate-Prefill-Worker" not in resp.headers
    assert _stats(regular)["requests"]["/v1/chat/completions"] == 3
    for worker in pd.pd_workers:  # (health checks may have come meanwhile)
        stats = _stats(worker)
        assert "/v1/chat/completions" not in stats["requests"], stats
        assert stats["pd"]["regular_requests"] == 0


def test_openai_client_sees_one_answer_streamed_or_not(pd: PdMesh) -> None:
    _reset(pd)
    client = openai.OpenAI(base_url=pd.mesh.nodes[1].url + "/v1", api_key="unused")
    whole = client.chat.completions.create(model=PD_MODEL, **CHAT)
    assert len(whole.choices) == 1 and whole.choices[0].message.content
    chunks = list(client.chat.completions.create(model=PD_MODEL, stream=True, **CHAT))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert len({c.id for c in chunks}) == 1
    _assert_paired(pd, 2)


def test_openai_client_sees_one_answer_from_a_grpc_pair(pd: PdMesh) -> None:
    before = _grpc_rooms(pd)
    client = openai.OpenAI(base_url=pd.mesh.nodes[2].url + "/v1", api_key="unused")
    whole = client.chat.completions.create(model=GRPC_PD, **CHAT)
    assert len(whole.choices) == 1 and whole.choices[0].message.content
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model=GRPC_PD, stream=True, **CHAT))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # the decode's answer, as a regular one
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert len({c.id for c in chunks}) == 1
    _assert_grpc_paired(pd, before, 2)


def test_both_grpc_halves_get_one_generate_request_with_disaggregated_params(
    pd: PdMesh,
) -> None:
    """The wire check: the same GenerateRequest, decoded with the pinned stubs."""
    before = _grpc_rooms(pd)
    resp = _chat(pd.mesh.nodes[0].url, GRPC_PD)
    assert resp.status_code == 200, resp.text
    (room,) = _assert_grpc_paired(pd, before, 1)
    rid = recorded(pd.records[1])[-1]["request"]["request_id"]
    halves = [recorded_request(path, rid) for path in pd.records]
    assert halves[0] == halves[1]
    assert wire_fields(halves[1])["disaggregated_params"] == {
        "bootstrap_host": "127.0.0.1",
        "bootstrap_port": pd.bootstrap_port,
        "bootstrap_room": room,
    }


def test_generate_with_logprobs_gets_the_prefills_input_logprobs(pd: PdMesh) -> None:
    """The decode echo worker reports no input logprobs (it never ran the prompt); the
    prefill's, one per prompt word, come first in the answer."""
    _reset(pd)
    body = {"model": PD_MODEL, "text": "one two three four", "return_logprob": True}
    resp = requests.post(pd.mesh.nodes[2].url + "/generate", json=body, timeout=20)
    assert resp.status_code == 200, resp.text
    meta = resp.json()["meta_info"]
    assert [entry[1] for entry in meta["input_token_logprobs"]] == [0, 1, 2, 3]
    _assert_paired(pd, 1)


def _four_requests_with_one_broken(pd: PdMesh, broken: EchoWorker) -> float:
    """Send 4 requests through the nodes while `broken` fails every request; the seconds
    they took."""
    _set_policy(pd, "round_robin")
    _reset(pd)
    requests.post(broken.url + "/_faults", json={"fail_rate": 1.0}, timeout=5).raise_for_status()
    started = time.monotonic()
    try:
        for i in range(4):
            resp = _chat(pd.mesh.nodes[i % 3].url)
            assert resp.status_code == 200, resp.text
    finally:
        requests.post(broken.url + "/_faults", json={"fail_rate": 0.0}, timeout=5)
    return time.monotonic() - started


def test_a_failing_decode_half_is_retried_on_the_other(pd: PdMesh) -> None:
    _four_requests_with_one_broken(pd, pd.decodes[0])
    decode_rooms = _rooms(pd.decodes)
    assert decode_rooms[0] == [] and len(decode_rooms[1]) == 4
    prefilled = {r for rooms in _rooms(pd.prefills) for r in rooms}
    assert set(decode_rooms[1]) <= prefilled  # the failed attempts' rooms are the extra ones


def test_a_failing_prefill_half_is_retried_at_once_on_the_other(pd: PdMesh) -> None:
    """The decode half is not left waiting for a prefill that failed (the decode echo
    worker would wait 5 s for its room): the pair is tried again with the other prefill."""
    assert _four_requests_with_one_broken(pd, pd.prefills[0]) < 4
    assert _rooms(pd.prefills)[0] == []
    _assert_paired(pd, 4)


def test_a_prefill_without_a_decode_partner_is_a_503_naming_it(pd: PdMesh) -> None:
    for node in pd.mesh.nodes:
        resp = _chat(node.url, LONELY)
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["code"] == "no_pd_pair"
        message = error["message"]
        assert message == f"model {LONELY!r} has prefill workers but no decode worker"
    resp = _chat(pd.mesh.nodes[1].url, MIXED)
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["code"] == "no_pd_pair"
    assert error["message"] == (
        f"model {MIXED!r} has healthy prefill workers over http and decode workers over "
        "grpc only: a pair needs both halves on the same transport"
    )


def test_workers_views_show_pair_health(pd: PdMesh) -> None:
    for node in pd.mesh.nodes:
        for path in ("/workers", "/ha/workers"):
            pairs = requests.get(node.url + path, timeout=5).json()["pd_pairs"]
            assert pairs[PD_MODEL] == {
                "prefill": {"healthy": 2, "total": 2},
                "decode": {"healthy": 2, "total": 2},
                "can_serve": True,
                "missing": None,
            }
            assert pairs[LONELY]["can_serve"] is False
            assert pairs[LONELY]["decode"] == {"healthy": 0, "total": 0}
            assert MODEL not in pairs
            assert pairs[GRPC_PD]["can_serve"] is True
            assert pairs[MIXED]["can_serve"] is False
    listed = requests.get(pd.mesh.nodes[2].url + "/workers", timeout=5).json()["workers"]
    second = next(w for w in listed if w["url"] == pd.prefills[1].url)
    assert second["bootstrap_port"] is None
    assert second["metadata"]["disaggregation_bootstrap_port"] > 0
