"""Prefill/decode pairs: which workers pair, the routing rule, the bootstrap fields."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from node.echo.httpio import BadRequest
from node.echo.pd import PdRooms, bootstrap_app, halves_of
from node.grpcproxy.pd import disaggregated_params
from node.localmesh.process import free_port
from node.proxy.pd import bootstrap_fields, bootstrap_port, merged_logprobs, with_fields
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.pairs import missing_half, pair_health, partners, split_roles
from node.workers.worker import Worker

BOX = CredentialBox("s" * 40)


def worker(n: int, kind: str, healthy: bool = True, **fields: Any) -> Worker:
    record = {
        "id": f"w{n}",
        "url": f"http://10.0.0.{n}:8000",
        "model_id": "m",
        "worker_type": kind,
        "status": "ready",
        **fields,
    }
    w = Worker(record, BreakerSettings(), BOX)
    w.healthy = healthy
    return w


def test_roles_split_by_worker_type_in_order() -> None:
    workers = [worker(1, "decode"), worker(2, "regular"), worker(3, "prefill"), worker(4, "decode")]
    roles = split_roles(workers)
    assert [w.id for w in roles.regular] == ["w2"]
    assert [w.id for w in roles.prefill] == ["w3"]
    assert [w.id for w in roles.decode] == ["w1", "w4"]


@pytest.mark.parametrize(
    ("kinds", "uses_pairs"),
    [
        (["regular"], False),
        (["prefill", "decode"], True),
        (["regular", "prefill", "decode"], True),  # a healthy pair serves first
        (["regular", "prefill", "decode-down"], False),  # else the regular workers do
        (["prefill"], True),  # no regular worker: the pair path names what is missing
    ],
)
def test_the_rule_for_a_model_with_both_kinds(kinds: list[str], uses_pairs: bool) -> None:
    workers = [
        worker(i, kind.removesuffix("-down"), healthy=not kind.endswith("-down"))
        for i, kind in enumerate(kinds)
    ]
    assert split_roles(workers).use_pairs() is uses_pairs


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ([worker(1, "prefill")], "model 'm' has prefill workers but no decode worker"),
        ([worker(1, "decode")], "model 'm' has decode workers but no prefill worker"),
        (
            [worker(1, "prefill"), worker(2, "decode", healthy=False)],
            "model 'm' has prefill workers but no healthy decode worker",
        ),
        (
            [worker(1, "prefill", healthy=False), worker(2, "decode")],
            "model 'm' has decode workers but no healthy prefill worker",
        ),
        ([worker(1, "prefill"), worker(2, "decode")], None),
    ],
)
def test_the_missing_half_is_named(workers: list[Worker], message: str | None) -> None:
    assert missing_half("m", split_roles(workers)) == message


def test_pair_health_counts_each_half_per_model() -> None:
    shown = pair_health(
        [worker(1, "prefill"), worker(2, "decode", healthy=False), worker(3, "regular")]
    )
    assert shown == {
        "m": {
            "prefill": {"healthy": 1, "total": 1},
            "decode": {"healthy": 0, "total": 1},
            "can_serve": False,
            "missing": "model 'm' has prefill workers but no healthy decode worker",
        }
    }


def test_bootstrap_fields_name_the_prefill_and_a_63_bit_room() -> None:
    prefill = worker(7, "prefill", bootstrap_port=8998)
    fields = bootstrap_fields(prefill, {"messages": []})
    assert fields["bootstrap_host"] == "10.0.0.7" and fields["bootstrap_port"] == 8998
    assert 0 <= fields["bootstrap_room"] < 2**63
    rooms = {bootstrap_fields(prefill, {})["bootstrap_room"] for _ in range(50)}
    assert len(rooms) == 50
    body = orjson.loads(with_fields(b'{"model": "m", "stream": true}', fields))
    assert body == {"model": "m", "stream": True, **fields}


def test_a_batch_gets_one_entry_per_prompt() -> None:
    prefill = worker(7, "prefill", bootstrap_port=8998)
    for data in ({"text": ["a", "b", "c"]}, {"input_ids": [[1], [2], [3]]}):
        fields = bootstrap_fields(prefill, data)
        assert fields["bootstrap_host"] == ["10.0.0.7"] * 3
        assert fields["bootstrap_port"] == [8998] * 3
        assert len(set(fields["bootstrap_room"])) == 3
    assert isinstance(bootstrap_fields(prefill, {"input_ids": [1, 2]})["bootstrap_room"], int)


def test_the_bootstrap_port_falls_back_to_what_discovery_read() -> None:
    assert bootstrap_port(worker(1, "prefill", bootstrap_port=9000)) == 9000
    found = {"disaggregation_bootstrap_port": 9001}
    assert bootstrap_port(worker(1, "prefill", metadata=found)) == 9001
    assert bootstrap_port(worker(1, "prefill")) is None  # sent as null, as SGLang's router does


def test_the_echo_decode_gives_up_on_a_prefill_that_never_had_the_room() -> None:
    rooms = PdRooms("decode", wait_s=0.1)

    async def meet() -> bool:
        try:
            return await rooms.meet("127.0.0.1", free_port(), 7)
        finally:
            await rooms.close()

    started = time.monotonic()
    assert asyncio.run(meet()) is False
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "halves"),
    [
        ({"bootstrap_host": "h", "bootstrap_port": 1, "bootstrap_room": 5}, [("h", 1, 5)]),
        ({"bootstrap_host": "h", "bootstrap_port": None, "bootstrap_room": 5}, [("h", None, 5)]),
        (
            {"bootstrap_host": ["h", "h"], "bootstrap_port": [1, 1], "bootstrap_room": [5, 6]},
            [("h", 1, 5), ("h", 1, 6)],
        ),
        ({"messages": []}, None),  # a regular request
    ],
)
def test_the_echo_worker_reads_each_half(body: dict[str, Any], halves: Any) -> None:
    assert halves_of(body) == halves


def test_the_echo_worker_refuses_a_room_that_is_not_an_integer() -> None:
    with pytest.raises(BadRequest, match="bootstrap_room must be an integer"):
        halves_of({"bootstrap_host": "h", "bootstrap_port": 1, "bootstrap_room": "5"})


def _generated(logprobs: list[Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"prompt_tokens": 2}
    if logprobs is not None:
        meta["input_token_logprobs"] = logprobs
    return {"text": "x", "meta_info": meta}


def test_the_prefills_input_logprobs_come_first() -> None:
    prefill = orjson.dumps(_generated([[-1.0, 1, None], [-2.0, 2, None]]))
    decode = orjson.dumps(_generated([[-3.0, 3, None]]))
    merged = orjson.loads(merged_logprobs(prefill, decode))
    assert merged["meta_info"]["input_token_logprobs"] == [
        [-1.0, 1, None],
        [-2.0, 2, None],
        [-3.0, 3, None],
    ]
    batch = orjson.loads(
        merged_logprobs(
            orjson.dumps([_generated([[-1.0, 1, None]])] * 2),
            orjson.dumps([_generated(None)] * 2),
        )
    )
    assert [b["meta_info"]["input_token_logprobs"] for b in batch] == [[[-1.0, 1, None]]] * 2


@pytest.mark.parametrize(
    "prefill",
    [None, b"not json", b"[]", orjson.dumps(_generated(None)), orjson.dumps([_generated([])] * 3)],
)
def test_the_decodes_answer_stays_as_it_was_without_usable_logprobs(prefill: bytes | None) -> None:
    decode = orjson.dumps(_generated([[-3.0, 3, None]]))
    assert merged_logprobs(prefill, decode) == decode


def test_halves_pair_only_on_one_transport() -> None:
    grpc_decode = worker(2, "decode", connection_mode="grpc")
    roles = split_roles([worker(1, "prefill"), grpc_decode, worker(3, "regular")])
    assert grpc_decode.routable and not roles.use_pairs()
    assert missing_half("m", roles) == (
        "model 'm' has healthy prefill workers over http and decode workers over grpc "
        "only: a pair needs both halves on the same transport"
    )
    grpc_prefill = worker(4, "prefill", connection_mode="grpc")
    roles = split_roles([worker(1, "prefill"), grpc_decode, grpc_prefill])
    assert roles.use_pairs() and missing_half("m", roles) is None
    assert partners(roles.decode, grpc_prefill) == [grpc_decode]
    assert partners(roles.decode, roles.prefill[0]) == []


def test_grpc_halves_get_disaggregated_params_with_an_int32_room() -> None:
    prefill = worker(5, "prefill", connection_mode="grpc", bootstrap_port=8998)
    rooms = set()
    for _ in range(50):
        params = disaggregated_params(prefill)
        assert (params.bootstrap_host, params.bootstrap_port) == ("10.0.0.5", 8998)
        assert 0 <= params.bootstrap_room < 2**31
        rooms.add(params.bootstrap_room)
    assert len(rooms) > 1
    assert disaggregated_params(worker(6, "prefill")).bootstrap_port == 0  # unknown


def test_the_bootstrap_server_reads_a_room_in_ascii_digits_only() -> None:
    async def statuses() -> list[int]:
        rooms = PdRooms("prefill", 0.1)
        rooms.remember(2**63 - 1, "/v1/completions")
        async with TestClient(TestServer(bootstrap_app(rooms))) as client:
            found = []
            for room in (str(2**63 - 1), "%EF%BC%95", "%C2%B2", "%D9%A3", "x", "5"):
                async with client.get(URL(f"/bootstrap/{room}", encoded=True)) as resp:
                    found.append(resp.status)
            return found

    assert asyncio.run(statuses()) == [200, 400, 400, 400, 400, 404]
