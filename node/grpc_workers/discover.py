"""What discovery of a gRPC worker records: its model and server info, and where its
tokenizer comes from.

The tokenizer is looked for in this order: the worker's `tokenizer_path` (a
registered tokenizer's name or id, else a local file or directory, as
`node.text.resolve` reads it), a tokenizer registered under the model's name,
and last the worker itself (GetTokenizer). The choice is recorded with the
worker (`metadata.tokenizer`), so every node loads the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.text.resolve import TokenizerCatalog

SOURCES = ("tokenizer_path", "registry", "worker")


class TokenizerUnavailable(Exception):
    """No tokenizer could be found or loaded for a gRPC worker; str() says where it looked."""


@dataclass(frozen=True)
class TokenizerChoice:
    source: str  # one of SOURCES
    name: str = ""  # the path or registered name; empty for the worker's own
    sha256: str = ""  # the worker's zip, once fetched
    model: str = ""

    def recorded(self) -> dict[str, str]:
        shown = {"source": self.source, "name": self.name, "sha256": self.sha256}
        return {k: v for k, v in shown.items() if v}

    @classmethod
    def from_recorded(cls, value: Any) -> TokenizerChoice | None:
        if not isinstance(value, Mapping) or value.get("source") not in SOURCES:
            return None
        return cls(str(value["source"]), str(value.get("name", "")), str(value.get("sha256", "")))

    def missing(self, reason: str) -> str:
        """Why no tokenizer serves the worker, naming each place looked in."""
        model = f"registered as {self.model!r}" if self.model else "registered for its model"
        return (
            f"no tokenizer for this gRPC worker: it has no tokenizer_path, no tokenizer is "
            f"{model}, and its own could not be used ({reason}); set tokenizer_path or "
            "register one with POST /v1/tokenizers"
        )


def choose_tokenizer(
    record: Mapping[str, Any], model_id: str | None, catalog: TokenizerCatalog
) -> TokenizerChoice:
    """Where the worker's tokenizer comes from (TokenizerUnavailable for a bad path)."""
    path = record.get("tokenizer_path")
    if path:
        if catalog.find(path) is not None:
            return TokenizerChoice("registry", path)
        if Path(path).exists():
            return TokenizerChoice("tokenizer_path", path)
        raise TokenizerUnavailable(
            f"tokenizer_path {path!r} names no registered tokenizer and no file on this node"
        )
    if model_id and catalog.find(model_id) is not None:
        return TokenizerChoice("registry", model_id)
    return TokenizerChoice("worker", model=model_id or "")


# GetModelInfo and GetServerInfo fields shown with the worker (`/workers` metadata).
MODEL_FIELDS = (
    "model_path",
    "served_model_name",
    "max_context_length",
    "max_req_input_len",
    "vocab_size",
    "eos_token_ids",
    "bos_token_id",
    "model_type",
    "architectures",
    "is_generation",
)


def described(info: pb.GetModelInfoResponse, server: pb.GetServerInfoResponse) -> dict[str, Any]:
    """The worker's metadata as discovery records it."""
    fields = MessageToDict(info, preserving_proto_field_name=True)
    metadata = {name: fields[name] for name in MODEL_FIELDS if name in fields}
    metadata["protocol"] = "sglang-grpc"
    if server.server_type:
        metadata["server_type"] = server.server_type
    if server.sglang_version:
        metadata["engine_version"] = server.sglang_version
    if (port := _bootstrap_port(server)) is not None:
        metadata["disaggregation_bootstrap_port"] = port  # a prefill's, for PD pairs
    return metadata


def _bootstrap_port(server: pb.GetServerInfoResponse) -> int | None:
    """The prefill's KV bootstrap port from its server args (a Struct: numbers are floats)."""
    value = server.server_args.fields.get("disaggregation_bootstrap_port")
    port = value.number_value if value is not None else 0.0
    if port.is_integer() and 0 < port < 65536:
        return int(port)
    return None
