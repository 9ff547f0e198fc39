"""The smg-grpc-proto messages meshgate relies on keep their shape.

If a release of the pinned range renames, renumbers or retypes one of these
fields, this fails naming it, before the node sends a request the engine reads
differently. Each entry is field name -> (number, type); message fields name
their message type, repeated ones end in []."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from smg_grpc_proto.generated import common_pb2
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

S = "sglang.grpc.scheduler."
TYPE_NAMES = {v: k[5:].lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}

RELIED_ON: dict[Any, dict[str, tuple[int, str]]] = {
    pb.GenerateRequest: {
        "request_id": (1, "string"),
        "tokenized": (2, S + "TokenizedInput"),
        "sampling_params": (4, S + "SamplingParams"),
        "return_logprob": (5, "bool"),
        "logprob_start_len": (6, "int32"),
        "top_logprobs_num": (7, "int32"),
        "disaggregated_params": (10, S + "DisaggregatedParams"),
        "stream": (17, "bool"),
        "require_reasoning": (18, "bool"),
    },
    pb.TokenizedInput: {"original_text": (1, "string"), "input_ids": (2, "uint32[]")},
    pb.SamplingParams: {
        "temperature": (1, "float"),
        "top_p": (2, "float"),
        "top_k": (3, "int32"),
        "min_p": (4, "float"),
        "frequency_penalty": (5, "float"),
        "presence_penalty": (6, "float"),
        "repetition_penalty": (7, "float"),
        "max_new_tokens": (8, "uint32"),
        "stop": (9, "string[]"),
        "stop_token_ids": (10, "uint32[]"),
        "skip_special_tokens": (11, "bool"),
        "spaces_between_special_tokens": (12, "bool"),
        "regex": (13, "string"),
        "json_schema": (14, "string"),
        "ebnf_grammar": (15, "string"),
        "structural_tag": (16, "string"),
        "n": (17, "uint32"),
        "min_new_tokens": (18, "uint32"),
        "ignore_eos": (19, "bool"),
        "no_stop_trim": (20, "bool"),
    },
    pb.DisaggregatedParams: {
        "bootstrap_host": (1, "string"),
        "bootstrap_port": (2, "int32"),
        "bootstrap_room": (3, "int32"),
    },
    pb.GenerateResponse: {
        "request_id": (1, "string"),
        "chunk": (2, S + "GenerateStreamChunk"),
        "complete": (3, S + "GenerateComplete"),
    },
    pb.GenerateStreamChunk: {
        "token_ids": (1, "uint32[]"),
        "prompt_tokens": (2, "uint32"),
        "completion_tokens": (3, "uint32"),
        "cached_tokens": (4, "uint32"),
        "output_logprobs": (5, S + "OutputLogProbs"),
        "index": (8, "uint32"),
        "reasoning_tokens": (9, "uint32"),
    },
    pb.GenerateComplete: {
        "output_ids": (1, "uint32[]"),
        "finish_reason": (2, "string"),
        "prompt_tokens": (3, "uint32"),
        "completion_tokens": (4, "uint32"),
        "cached_tokens": (5, "uint32"),
        "output_logprobs": (6, S + "OutputLogProbs"),
        "matched_token_id": (8, "uint32"),
        "matched_stop_str": (9, "string"),
        "index": (11, "uint32"),
        "reasoning_tokens": (12, "uint32"),
    },
    pb.HealthCheckRequest: {},
    pb.HealthCheckResponse: {"healthy": (1, "bool"), "message": (2, "string")},
    pb.GetModelInfoRequest: {},
    pb.GetModelInfoResponse: {
        "model_path": (1, "string"),
        "tokenizer_path": (2, "string"),
        "served_model_name": (6, "string"),
        "max_context_length": (7, "int32"),
        "vocab_size": (8, "int32"),
        "eos_token_ids": (11, "int32[]"),
    },
    pb.GetServerInfoResponse: {
        "server_args": (1, "google.protobuf.Struct"),
        "sglang_version": (7, "string"),
        "server_type": (8, "string"),
    },
    pb.GetLoadsRequest: {"dp_rank": (1, "int32"), "include": (2, "string[]")},
    pb.GetLoadsResponse: {
        "loads": (4, S + "SchedulerLoad[]"),
        "aggregate": (5, S + "AggregateMetrics"),
    },
    pb.SchedulerLoad: {
        "num_running_reqs": (2, "int32"),
        "num_waiting_reqs": (3, "int32"),
        "num_total_reqs": (4, "int32"),
    },
    pb.AggregateMetrics: {"total_running_reqs": (1, "int32"), "total_waiting_reqs": (2, "int32")},
    pb.AbortRequest: {"request_id": (1, "string"), "reason": (2, "string")},
    pb.AbortResponse: {"success": (1, "bool"), "message": (2, "string")},
    pb.EmbedRequest: {"request_id": (1, "string"), "tokenized": (2, S + "TokenizedInput")},
    pb.EmbedResponse: {
        "embedding_dim": (4, "uint32"),
        "embedding": (5, "float[]"),
        "prompt_tokens": (6, "uint32"),
    },
    common_pb2.GetTokenizerChunk: {"data": (1, "bytes"), "sha256": (2, "string")},
    common_pb2.FlushCacheRequest: {"timeout_s": (1, "float")},
    common_pb2.FlushCacheResponse: {"success": (1, "bool"), "message": (2, "string")},
}

ONEOFS = {
    (pb.GenerateResponse, "response"): {"chunk", "complete"},
    (pb.SamplingParams, "constraint"): {"regex", "json_schema", "ebnf_grammar", "structural_tag"},
    (pb.GenerateComplete, "matched_stop"): {"matched_token_id", "matched_stop_str"},
}

# (method, server streaming?): the RPCs the node and the simulator use.
METHODS = {
    "Generate": True,
    "Embed": False,
    "HealthCheck": False,
    "Abort": False,
    "GetModelInfo": False,
    "GetServerInfo": False,
    "GetLoads": False,
    "FlushCache": False,
    "GetTokenizer": True,
}


def _shape(field: FieldDescriptor) -> tuple[int, str]:
    kind = field.message_type.full_name if field.message_type else TYPE_NAMES[field.type]
    return field.number, kind + ("[]" if field.is_repeated else "")


@pytest.mark.parametrize("message", list(RELIED_ON), ids=lambda m: m.DESCRIPTOR.name)
def test_fields_keep_their_numbers_and_types(message: Any) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    for name, expected in RELIED_ON[message].items():
        field = descriptor.fields_by_name.get(name)
        assert field is not None, f"{descriptor.full_name}.{name} is gone"
        assert _shape(field) == expected, f"{descriptor.full_name}.{name} changed shape"


def test_oneofs_and_presence() -> None:
    for (message, oneof), members in ONEOFS.items():
        fields = message.DESCRIPTOR.oneofs_by_name[oneof].fields
        assert {f.name for f in fields} == members, f"{message.DESCRIPTOR.name}.{oneof}"
    # max_new_tokens is `optional`: unset means "the engine's default", not 0.
    assert pb.SamplingParams.DESCRIPTOR.fields_by_name["max_new_tokens"].has_presence


def test_the_scheduler_service_keeps_its_methods() -> None:
    service = pb.DESCRIPTOR.services_by_name["SglangScheduler"]
    assert service.full_name == "sglang.grpc.scheduler.SglangScheduler"
    for name, streams in METHODS.items():
        method = service.methods_by_name.get(name)
        assert method is not None, f"SglangScheduler.{name} is gone"
        assert method.server_streaming is streams and not method.client_streaming, name
