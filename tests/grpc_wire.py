"""Read what a grpc-echo-worker recorded, and decode it with the pinned stubs.

The wire check: the bytes the node sent are decoded with `smg_grpc_proto`'s own
message classes, and `wire_fields` lists every field present on the wire (proto3
leaves defaults off), so a test compares the request field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb

from node.grpc_echo.record import raw_bytes, read_record


def recorded(path: Path, event: str = "generate") -> list[dict[str, Any]]:
    return [entry for entry in read_record(path) if entry["event"] == event]


def recorded_request(path: Path, request_id: str) -> pb.GenerateRequest:
    """The GenerateRequest with `request_id`, decoded from the raw bytes recorded."""
    for entry in recorded(path):
        message = pb.GenerateRequest.FromString(raw_bytes(entry))
        if message.request_id == request_id:
            return message
    raise AssertionError(f"no Generate with request_id {request_id!r} in {path}")


def wire_fields(message: Message) -> dict[str, Any]:
    """Every field set on `message`, nested messages as dicts, repeated as lists."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.message_type is not None:
            many = field.is_repeated
            out[field.name] = [wire_fields(v) for v in value] if many else wire_fields(value)
        elif field.is_repeated:
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out
