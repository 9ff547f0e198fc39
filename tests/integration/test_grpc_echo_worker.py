"""`meshgate grpc-echo-worker` through the pinned smg-grpc-proto stubs over real gRPC."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from smg_grpc_proto.generated import common_pb2
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb
from smg_grpc_proto.generated import sglang_scheduler_pb2_grpc as pb_grpc
from smg_grpc_proto.generated import vllm_engine_pb2 as vpb
from smg_grpc_proto.generated import vllm_engine_pb2_grpc as vllm_grpc

from node.blobs.store import BlobStore
from node.grpc_echo.record import raw_bytes
from node.grpc_workers.workers import GrpcSettings, GrpcWorkers
from node.localmesh import GrpcEchoWorker
from node.text.resolve import NoCatalog
from node.text.tokenizer import TextTokenizer, load_tokenizer
from node.workers.breaker import BreakerSettings
from node.workers.credentials import CredentialBox
from node.workers.pool import WorkerPool
from tests.grpc_wire import recorded, recorded_request, wire_fields
from tests.integration.conftest import Cluster
from tests.support import free_port, wait_for
from tests.tokenizer_files import build_tokenizer_dir

KEY = "grpc-echo-test-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
BASE_LOAD = 2


@pytest.fixture(scope="module")
def sim(module_cluster: Cluster) -> Iterator[dict[str, Any]]:
    tok_dir = build_tokenizer_dir(module_cluster.tmp_path / "tok")
    record = module_cluster.tmp_path / "record.jsonl"
    flags = ("--api-key", KEY, "--load", str(BASE_LOAD), "--record-file", str(record))
    worker = module_cluster.grpc_echo(tok_dir, *flags, "--token-delay-ms", "1")
    with grpc.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        yield {
            "stub": pb_grpc.SglangSchedulerStub(channel),
            "tok": load_tokenizer(tok_dir),
            "dir": tok_dir,
            "record": record,
            "cluster": module_cluster,
            "url": worker.url,
        }


def _request(tok: TextTokenizer, text: str, rid: str, **sampling: Any) -> pb.GenerateRequest:
    stream = sampling.pop("stream", False)
    return pb.GenerateRequest(
        request_id=rid,
        tokenized=pb.TokenizedInput(original_text=text, input_ids=tok.encode(text)),
        sampling_params=pb.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, **sampling),
        stream=stream,
    )


def _generate(stub: Any, request: pb.GenerateRequest) -> list[pb.GenerateResponse]:
    return list(stub.Generate(request, metadata=AUTH, timeout=10))


def test_model_and_server_info_and_health(sim: dict[str, Any]) -> None:
    stub, tok = sim["stub"], sim["tok"]
    assert stub.HealthCheck(pb.HealthCheckRequest(), metadata=AUTH, timeout=5).healthy
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=AUTH, timeout=5)
    assert info.served_model_name == "echo-model"
    assert list(info.eos_token_ids) == tok.eos_token_ids != []
    assert (info.vocab_size, info.max_context_length) == (tok.vocab_size, 4096)
    server = stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=AUTH, timeout=5)
    assert server.server_type == "grpc"
    assert server.server_args["served_model_name"] == "echo-model"


def test_a_call_without_the_key_is_unauthenticated(sim: dict[str, Any]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        sim["stub"].HealthCheck(pb.HealthCheckRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_stream_echoes_the_prompt_up_to_max_new_tokens(sim: dict[str, Any]) -> None:
    tok = sim["tok"]
    request = _request(tok, "hello world and more words", "r-stream", max_new_tokens=3, stream=True)
    responses = _generate(sim["stub"], request)
    chunks = [r.chunk for r in responses if r.HasField("chunk")]
    assert [len(c.token_ids) for c in chunks] == [1, 1, 1]
    assert [c.completion_tokens for c in chunks] == [1, 2, 3]
    prompt_len = len(request.tokenized.input_ids)
    assert {c.prompt_tokens for c in chunks} == {prompt_len}
    final = responses[-1]
    assert final.request_id == "r-stream" and final.HasField("complete")
    assert final.complete.finish_reason == "length"
    assert list(final.complete.output_ids) == [c.token_ids[0] for c in chunks]
    ordinary = tok.encode("hello world and more words", add_special_tokens=False)
    assert list(final.complete.output_ids) == ordinary[-16:][:3]


def test_unary_reply_ends_at_eos_or_a_stop_token(sim: dict[str, Any]) -> None:
    tok = sim["tok"]
    reply = "<think>why</think>because"
    (whole,) = _generate(sim["stub"], _request(tok, f"[[reply:{reply}]]", "r-reply"))
    assert whole.complete.finish_reason == "stop"
    assert whole.complete.matched_token_id == tok.eos_token_ids[0]
    assert tok.decode(whole.complete.output_ids) == reply
    ids = tok.encode(reply, add_special_tokens=False)
    stop_at = _request(tok, f"[[reply:{reply}]]", "r-stop", stop_token_ids=[ids[2]])
    (stopped,) = _generate(sim["stub"], stop_at)
    assert list(stopped.complete.output_ids) == ids[:2]
    assert stopped.complete.matched_token_id == ids[2]


def test_logprobs_and_stop_strings(sim: dict[str, Any]) -> None:
    tok = sim["tok"]
    request = _request(tok, "[[reply:alpha beta gamma]]", "r-lp", max_new_tokens=3, stream=True)
    request.return_logprob, request.top_logprobs_num = True, 2
    responses = _generate(sim["stub"], request)
    chunks = [r.chunk for r in responses[:-1]]
    assert [list(c.output_logprobs.token_ids) for c in chunks] == [
        list(c.token_ids) for c in chunks
    ]
    top = chunks[0].output_logprobs.top_logprobs[0]
    assert top.token_ids[0] == chunks[0].token_ids[0] and top.values[0] > top.values[1]
    final = responses[-1].complete.output_logprobs
    assert list(final.token_logprobs) == [c.output_logprobs.token_logprobs[0] for c in chunks]
    stop = _request(tok, "[[reply:alpha beta gamma]]", "r-stopstr", stop=["beta"])
    (done,) = _generate(sim["stub"], stop)
    assert done.complete.matched_stop_str == "beta"
    assert tok.decode(done.complete.output_ids).endswith("beta")


def test_n_gives_one_completion_per_index(sim: dict[str, Any]) -> None:
    request = _request(sim["tok"], "two answers please", "r-n", n=2, max_new_tokens=2)
    responses = _generate(sim["stub"], request)
    assert sorted(r.complete.index for r in responses) == [0, 1]


@pytest.mark.parametrize("code", ["INVALID_ARGUMENT", "UNAVAILABLE", "INTERNAL"])
def test_a_fail_marker_fails_with_that_status(sim: dict[str, Any], code: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        _generate(sim["stub"], _request(sim["tok"], f"x [[fail:{code}]]", f"r-fail-{code}"))
    assert caught.value.code().name == code


def test_a_cut_marker_aborts_the_stream_after_k_tokens(sim: dict[str, Any]) -> None:
    got: list[pb.GenerateResponse] = []
    request = _request(sim["tok"], "[[cut:2]] a long prompt here", "r-cut", stream=True)
    with pytest.raises(grpc.RpcError) as caught:
        for response in sim["stub"].Generate(request, metadata=AUTH, timeout=10):
            got.append(response)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [r.chunk.completion_tokens for r in got] == [1, 2]


def test_a_hung_request_counts_in_loads_and_abort_ends_it(sim: dict[str, Any]) -> None:
    stub = sim["stub"]

    def running() -> int:
        loads = stub.GetLoads(pb.GetLoadsRequest(), metadata=AUTH, timeout=5)
        assert loads.aggregate.total_running_reqs == loads.loads[0].num_running_reqs
        return loads.loads[0].num_running_reqs

    assert running() == BASE_LOAD
    result: list[pb.GenerateResponse] = []
    request = _request(sim["tok"], "[[hang]] wait", "r-hang", stream=True)
    call = threading.Thread(target=lambda: result.extend(_generate(stub, request)))
    call.start()
    wait_for(lambda: running() == BASE_LOAD + 1, timeout=10, what="the hung request")
    aborted = stub.Abort(pb.AbortRequest(request_id="r-hang", reason="test"), metadata=AUTH)
    call.join(timeout=10)
    assert aborted.success and result[-1].complete.finish_reason == "abort"
    assert running() == BASE_LOAD
    assert [e["request"]["request_id"] for e in recorded(sim["record"], "abort")] == ["r-hang"]


def test_cached_tokens_until_the_cache_is_flushed(sim: dict[str, Any]) -> None:
    stub, tok = sim["stub"], sim["tok"]
    text = "the same prompt twice for the cache"
    _generate(stub, _request(tok, text, "r-c1", max_new_tokens=1))
    (again,) = _generate(stub, _request(tok, text, "r-c2", max_new_tokens=1))
    assert again.complete.cached_tokens == len(tok.encode(text))
    flushed = stub.FlushCache(common_pb2.FlushCacheRequest(), metadata=AUTH, timeout=5)
    assert flushed.success
    (cold,) = _generate(stub, _request(tok, text, "r-c3", max_new_tokens=1))
    assert cold.complete.cached_tokens == 0


def test_get_tokenizer_streams_the_directory_as_a_zip(sim: dict[str, Any]) -> None:
    chunks = list(sim["stub"].GetTokenizer(common_pb2.GetTokenizerRequest(), metadata=AUTH))
    data = b"".join(c.data for c in chunks)
    assert chunks[-1].sha256 == hashlib.sha256(data).hexdigest()
    assert all(not c.sha256 for c in chunks[:-1])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        assert {"tokenizer.json", "tokenizer_config.json"} <= names
        assert archive.read("tokenizer.json") == (sim["dir"] / "tokenizer.json").read_bytes()


def test_embed_is_a_deterministic_unit_vector(sim: dict[str, Any]) -> None:
    tokenized = pb.TokenizedInput(input_ids=sim["tok"].encode("embed me"))
    first, second = (
        sim["stub"].Embed(pb.EmbedRequest(request_id=f"e{i}", tokenized=tokenized), metadata=AUTH)
        for i in range(2)
    )
    assert first.embedding_dim == 32 and list(first.embedding) == list(second.embedding)
    assert math.isclose(sum(v * v for v in first.embedding), 1.0, rel_tol=1e-5)
    assert first.prompt_tokens == len(tokenized.input_ids)


def test_the_record_keeps_the_raw_request_for_the_wire_check(sim: dict[str, Any]) -> None:
    tok = sim["tok"]
    request = _request(tok, "check the wire", "r-wire", max_new_tokens=4, stop_token_ids=[7])
    request.disaggregated_params.bootstrap_room = 0  # an empty message is still sent
    _generate(sim["stub"], request)
    fields = wire_fields(recorded_request(sim["record"], "r-wire"))
    assert fields == {
        "request_id": "r-wire",
        "tokenized": {"original_text": "check the wire", "input_ids": tok.encode("check the wire")},
        "sampling_params": {
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": -1,
            "max_new_tokens": 4,
            "stop_token_ids": [7],
        },
        "disaggregated_params": {},
    }


def _paired(tok: TextTokenizer, rid: str, port: int, room: int) -> pb.GenerateRequest:
    request = _request(tok, "prefill this prompt", rid)
    request.disaggregated_params.CopyFrom(
        pb.DisaggregatedParams(bootstrap_host="127.0.0.1", bootstrap_port=port, bootstrap_room=room)
    )
    return request


def test_a_prefill_records_rooms_and_a_decode_waits_for_its_prefill(
    sim: dict[str, Any],
) -> None:
    """The decode's Generate runs once the prefill's bootstrap server has seen its room,
    and fails clearly when that never happens."""
    cluster: Cluster = sim["cluster"]
    record = cluster.tmp_path / "prefill.jsonl"
    port = free_port()
    flags = ("--disaggregation-mode", "prefill", "--bootstrap-port", str(port))
    prefill_flags = (*flags, "--record-file", str(record))
    # The decode runs on its built-in tokenizer: the same Llama 3 style BPE as sim["dir"].
    decode_flags = ("--disaggregation-mode", "decode", "--bootstrap-wait-ms", "300")
    prefill, decode = (
        GrpcEchoWorker(cluster.tmp_path, free_port(), tok_dir, "echo-model", extra=extra)
        for tok_dir, extra in ((sim["dir"], prefill_flags), (None, decode_flags))
    )
    cluster.procs += [prefill.proc, decode.proc]
    for engine in (prefill, decode):  # started together, for time
        engine.wait_listening(timeout=15)
    tok = sim["tok"]
    with (
        grpc.insecure_channel(f"127.0.0.1:{prefill.port}") as to_prefill,
        grpc.insecure_channel(f"127.0.0.1:{decode.port}") as to_decode,
    ):
        stub = pb_grpc.SglangSchedulerStub(to_prefill)
        bare = _request(tok, "prefill this prompt", "p1")
        for engine in (stub, pb_grpc.SglangSchedulerStub(to_decode)):
            with pytest.raises(grpc.RpcError) as caught:
                list(engine.Generate(bare, timeout=10))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        (done,) = list(stub.Generate(_paired(tok, "p2", port, 42), timeout=10))
        decoder = pb_grpc.SglangSchedulerStub(to_decode)
        answer = list(decoder.Generate(_paired(tok, "d1", port, 42), timeout=10))
        assert tok.decode(list(answer[-1].complete.output_ids), False) == "prefill this prompt"
        with pytest.raises(grpc.RpcError) as caught:
            list(decoder.Generate(_paired(tok, "d2", port, 43), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == (
        f"the prefill half of bootstrap_room 43 never arrived at 127.0.0.1:{port} within 0.3s"
    )
    assert len(done.complete.output_ids) == 1
    last = recorded(record)[-1]
    assert last["mode"] == "prefill"
    assert last["bootstrap"] == {"host": "127.0.0.1", "port": port, "room": 42}


def test_a_fetched_tokenizer_is_loaded_again_from_its_digest(
    sim: dict[str, Any], tmp_path: Path
) -> None:
    """Discovery fetches the worker's tokenizer once; a node that loads the worker later
    (another node, or this one restarted) finds it by the digest discovery recorded."""
    store = BlobStore(tmp_path / "data", 1 << 26)
    record = {"id": "w1", "url": sim["url"], "connection_mode": "grpc", "api_key": KEY}
    fetches = len(recorded(sim["record"], "get_tokenizer"))
    box = CredentialBox("k" * 40)

    def parts() -> tuple[WorkerPool, GrpcWorkers]:
        pool = WorkerPool(BreakerSettings(), box)
        grpc_parts = GrpcWorkers(pool, store, NoCatalog(), tmp_path / "unpacked", GrpcSettings())
        return pool, grpc_parts

    async def discover_then_load() -> tuple[dict[str, Any], TextTokenizer | None]:
        pool, first = parts()
        found = await first.discover(record, box.target(record))
        await first.close()
        pool, later = parts()
        pool.sync({"w1": {**record, **found, "status": "ready"}})
        client = await later.ready_client("w1")
        await later.close()
        return found, client.tokenizer if client else None

    found, tokenizer = asyncio.run(discover_then_load())
    assert found["model_id"] == "echo-model"
    assert found["metadata"]["tokenizer"]["source"] == "worker"
    assert tokenizer is not None and tokenizer.encode("same") == sim["tok"].encode("same")
    assert len(recorded(sim["record"], "get_tokenizer")) == fetches + 1


def test_the_vllm_engine_service_on_the_same_port(sim: dict[str, Any]) -> None:
    tok = sim["tok"]
    with grpc.insecure_channel(sim["url"].removeprefix("grpc://")) as channel:
        stub = vllm_grpc.VllmEngineStub(channel)
        info = stub.GetModelInfo(vpb.GetModelInfoRequest(), metadata=AUTH, timeout=5)
        assert info.served_model_name == "echo-model"
        assert list(info.eos_token_ids) == tok.eos_token_ids
        sampling = vpb.SamplingParams(max_tokens=2, logprobs=1, stop_token_ids=[1])
        request = vpb.GenerateRequest(
            request_id="v1", text="[[reply:one two three]]", sampling_params=sampling, stream=True
        )
        responses = list(stub.Generate(request, metadata=AUTH, timeout=10))
        chunks = [r.chunk for r in responses[:-1]]
        final = responses[-1].complete
        assert [c.completion_tokens for c in chunks] == [1, 2]
        assert final.finish_reason == "length" and len(final.output_logprobs.token_ids) == 2
        assert final.WhichOneof("matched_stop") is None
        whole = vpb.GenerateRequest(request_id="v2", text="[[reply:one]]")
        (done,) = list(stub.Generate(whole, metadata=AUTH, timeout=10))
        assert done.complete.matched_token_id == tok.eos_token_ids[0]
        loads = stub.GetLoads(vpb.GetLoadsRequest(), metadata=AUTH, timeout=5)
        assert loads.loads[0].num_running_reqs == BASE_LOAD
        server = stub.GetServerInfo(vpb.GetServerInfoRequest(), metadata=AUTH, timeout=5)
        assert server.server_type == "vllm-grpc"
    entry = next(e for e in recorded(sim["record"]) if e["request"]["request_id"] == "v1")
    assert entry["service"] == "vllm"
    assert vpb.GenerateRequest.FromString(raw_bytes(entry)) == request
